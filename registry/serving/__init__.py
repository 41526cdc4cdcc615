"""The HTTP API over `registry.scoring` and the model registry (FastAPI), and its telemetry.

- app.py        create_app(): lifespan, error mapping, routers
- errors.py     domain error -> HTTP status, and the JSON error body
- deps.py       the dependencies routes declare: scorer, model registry, telemetry
- routes/       one router per surface: scores, features, models, ops
- schemas.py    request and response models
- telemetry.py  Prometheus metrics
- process.py    tuning of a serving process (threads, frozen heap)

Routing of traffic between aliases is part of scoring (registry.scoring.routing).
"""
