"""Development tools shipped with the package: ``tripsearch dev elasticsearch`` (throw-away clusters on loopback)."""
