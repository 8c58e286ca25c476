"""Where samples come from: llama.cpp in a supervised worker process, or an OpenAI-compatible
server."""
