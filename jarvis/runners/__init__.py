"""jarvis/runners"""
