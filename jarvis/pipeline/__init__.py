"""jarvis/pipeline"""
