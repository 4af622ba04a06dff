"""``python -m flow``: the ``flow`` command, for images and workers where only the interpreter's
path is known (a pod's command, a supervisor's argv)."""

from flow.cli.main import main

if __name__ == "__main__":
    main()
