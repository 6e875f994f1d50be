"""The HTTP API (the seed's im-platform): parse, authenticate, call a service, shape the reply.

Routes are declared with :func:`routing.route`, which also feeds the OpenAPI document at /openapi.json.
"""
