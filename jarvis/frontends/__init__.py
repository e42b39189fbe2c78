"""jarvis/frontends"""
