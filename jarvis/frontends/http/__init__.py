"""jarvis/frontends/http"""
