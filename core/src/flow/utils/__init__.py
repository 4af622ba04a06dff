"""Small helpers shared across flow's subsystems."""
