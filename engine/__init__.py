"""The sampling engine: models, problem sets, batched llama.cpp sampling and session storage."""
