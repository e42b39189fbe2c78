"""jarvis/runners/media"""
