"""The core's own plugins: registered first, from the fixed list in :mod:`flow.plugins`."""
