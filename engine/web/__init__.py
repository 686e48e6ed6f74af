"""The web layer: generated screens (ui), sign-in (auth) and the JSON API (api)."""
