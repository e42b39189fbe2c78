"""jarvis/catalog"""
