"""JSON API (Django REST framework), one module per job: `errors` (the error model), `handoff` (the
web-to-worker hand-off) and one module per resource (`tasks`, `images`, `reports`; `files` serves them)."""
