"""Bundles: the arrays a Numba kernel reads, handed to it as one named, typed argument (a Numba StructRef).

A kernel that takes its arrays one by one (bmp and Seismic took 27 to 33) gives wrong results, silently, when two
arrays of the same dtype trade places in a call; a bundle is filled by name (``ExactArrays.of(dense=..., ...)``,
every field required) and read by name inside the kernel (``a.dense``). One bundle class per method and purpose,
made once per segment and thread (its scratch), so a call hands over one object instead of dozens (measured: a
StructRef argument costs the dispatcher about what three arrays do; a namedtuple of arrays costs more, as Numba
types it in Python on every call).

Each bundle class needs a constructor compiled with ``cache=True`` in its own module (Numba's default one is compiled
afresh in every process, seconds each): ``@njit(cache=True) def _new(*args): return ExactArrays(*args)``, then
``register(ExactArrays, _new)``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from numba.core import types
from numba.experimental import structref


class Bundle(structref.StructRefProxy):
    FIELDS: tuple[str, ...] = ()

    @classmethod
    def of(cls, **values: Any) -> "Bundle":
        """A bundle from its fields by name; TypeError for a missing or unknown one."""
        wrong = set(cls.FIELDS) ^ set(values)
        if wrong:
            raise TypeError(f"{cls.__name__} takes the fields {list(cls.FIELDS)}; missing or unknown: {sorted(wrong)}")
        return cls._new(*(values[name] for name in cls.FIELDS))


def _preprocess_fields(self, fields):
    return tuple((name, types.unliteral(t)) for name, t in fields)


def register(proxy: type[Bundle], new: Callable) -> None:
    """Makes ``proxy`` a StructRef with its FIELDS (a Numba type class ``<Name>Type`` in the proxy's module, where
    Numba's cache finds it by name); ``new`` is its cached constructor."""
    module = sys.modules[proxy.__module__]
    name = f"{proxy.__name__}Type"
    typeclass = type(name, (types.StructRef,), {"preprocess_fields": _preprocess_fields,
                                                 "__module__": proxy.__module__, "__qualname__": name})
    setattr(module, name, typeclass)
    structref.register(typeclass)
    structref.define_proxy(proxy, typeclass, list(proxy.FIELDS))
    proxy._new = staticmethod(new)
