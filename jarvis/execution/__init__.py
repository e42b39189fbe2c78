"""jarvis/execution"""
