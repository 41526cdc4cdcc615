"""One router per surface of the HTTP API: scores, features, models, ops."""
