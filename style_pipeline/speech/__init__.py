"""Speech and chat: audio extraction, transcription, chat-log adapters, chat-to-speech alignment."""
