"""jarvis/runners/remote"""
