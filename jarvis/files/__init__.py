"""jarvis/files"""
