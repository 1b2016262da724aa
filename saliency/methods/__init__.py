"""The built-in methods, one module each; a module's name is its method's name.

Each module defines a :class:`saliency.engine.method.Method` subclass and registers it with
:func:`saliency.register_method`. Adding a method is adding a module here (or, from another
package, an entry point in the group ``saliency.methods``).
"""
