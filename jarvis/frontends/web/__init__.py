"""jarvis/frontends/web"""
