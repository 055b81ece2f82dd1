"""Lambda adapters: API Gateway event -> engine call -> response.

Handlers stay thin: they decode the request, call ``streamlet.engine.Engine`` (the same
code the SDK runs in direct mode) and encode the response. Clients are created lazily.
"""
