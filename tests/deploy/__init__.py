"""Checks of the production deployment files: docker-compose.yml, Dockerfile, coturn and Django settings."""
