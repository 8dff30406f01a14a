"""Fine-grained methods: what is built around a backbone beyond a new head (``method.name``).

Each method is one file here with a ``@register_method(name, ...)`` line; :mod:`.base` says what a
method is and how it plugs into training, evaluation, explanation and export.
"""
