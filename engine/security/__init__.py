"""Users, teams, roles and permissions; authentication."""
