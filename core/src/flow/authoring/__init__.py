"""The authoring API behind ``flow``'s public names.

``dag`` (DAG, @dag), ``baseoperator`` / ``abstractoperator`` (tasks), ``mappedoperator``
(``.partial().expand()``), ``taskflow`` (@task), ``taskgroup``, ``dependencies`` (``>>``,
chain), ``xcom_arg``, ``params``, ``trigger_rule``, ``templating`` and ``macros``,
``branching``, and ``collector`` (what a DAG file defined, for the DAG processor).
Nothing here imports jinja2, jsonschema or SQLAlchemy at module level.
"""
