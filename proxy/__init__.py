"""The therapist streaming proxy: the guide's /stream_chat contract in front of TGI."""
