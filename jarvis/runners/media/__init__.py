"""Image, audio and video files in and out, with budgets checked before decoding."""
