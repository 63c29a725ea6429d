"""Assets of the speech group: audio, transcripts, chat_events."""
