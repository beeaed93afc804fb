"""Strawberry's schema extension runner, with each hook looked up once per extension class instead of per request.

For every request Strawberry builds one context manager per phase
(operation, parsing, validation, execution), and each of those inspects every
extension: is the hook overridden, is it a generator, an async generator, a
coroutine? It then wraps each hook in a new `contextlib` context manager
(`functools.wraps` included) and enters them through an exit stack. With a
dozen extensions that was ~50 inspections and a dozen wrappers per request:
most of the cost of a small query. Here what kind each class's hook is gets
worked out once, and a phase drives its hooks' generators directly, in the
order and with the exception semantics of the exit stack it replaces (hooks
are left in reverse order; an exception is thrown into each; a hook may
replace it or, as contextlib allows, suppress it). One difference: a hook
that fails on its way in leaves the hooks of its phase entered before it with
its error at once, where Strawberry leaves them suspended until they are
garbage collected. Streamed results keep Strawberry's own context manager.
"""

import inspect
from collections.abc import Callable
from functools import cache
from types import TracebackType
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

PLAIN, COROUTINE, GENERATOR, ASYNC_GENERATOR = range(4)
PHASES = ("on_operation", "on_parse", "on_validate", "on_execute")


@cache
def _hooks_of(extension_class: type) -> dict[str, tuple[int, Callable[..., Any]]]:
    """The phases `extension_class` overrides, each with its hook function and how it is called."""
    hooks: dict[str, tuple[int, Callable[..., Any]]] = {}
    for phase in PHASES:
        hook = getattr(extension_class, phase)
        if hook is getattr(SchemaExtension, phase):
            continue
        if inspect.isgeneratorfunction(hook):
            hooks[phase] = (GENERATOR, hook)
        elif inspect.isasyncgenfunction(hook):
            hooks[phase] = (ASYNC_GENERATOR, hook)
        elif inspect.iscoroutinefunction(hook):
            hooks[phase] = (COROUTINE, hook)
        elif callable(hook):
            hooks[phase] = (PLAIN, hook)
        else:
            raise ValueError(f"Hook {phase} on {extension_class} must be callable, received {hook!r}")
    return hooks


class _Phase:
    """One phase's hooks, entered in the extensions' order and left in reverse."""

    __slots__ = ("hooks", "name", "running")

    def __init__(self, extensions: list[SchemaExtension], name: str) -> None:
        self.name = name
        classes: list[type] = [type(extension) for extension in extensions]
        self.hooks = [(hook[0], hook[1], extension) for extension, extension_class in zip(extensions, classes)
                      if (hook := _hooks_of(extension_class).get(name)) is not None]
        # (kind, the hook's generator) of each hook entered so far.
        self.running: list[tuple[int, Any]] = []

    def __enter__(self) -> None:
        try:
            for kind, hook, extension in self.hooks:
                if kind in (COROUTINE, ASYNC_GENERATOR):
                    raise RuntimeError(
                        f"SchemaExtension hook {extension}.{self.name} failed to complete synchronously.")
                self._enter_sync(kind, hook, extension)
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise

    def _enter_sync(self, kind: int, hook: Callable[..., Any], extension: SchemaExtension) -> None:
        if kind == PLAIN:
            hook(extension)
            return
        generator = hook(extension)
        try:
            next(generator)
        except StopIteration:
            raise RuntimeError("generator didn't yield") from None
        self.running.append((kind, generator))

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        # Entered synchronously, no hook is an async generator: the unwinding never suspends.
        unwinding = self.__aexit__(kind, error, traceback)
        try:
            unwinding.send(None)
        except StopIteration as done:
            return bool(done.value)
        unwinding.close()
        raise RuntimeError(f"SchemaExtension hook {self.name} failed to complete synchronously.")

    async def __aenter__(self) -> None:
        for kind, hook, extension in self.hooks:
            try:
                if kind == ASYNC_GENERATOR:
                    generator = hook(extension)
                    try:
                        await generator.__anext__()
                    except StopAsyncIteration:
                        raise RuntimeError("generator didn't yield") from None
                    self.running.append((kind, generator))
                elif kind == COROUTINE:
                    await hook(extension)
                else:
                    self._enter_sync(kind, hook, extension)
            except BaseException as error:
                await self.__aexit__(type(error), error, error.__traceback__)
                raise

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> bool:
        received, suppressed = error is not None, False
        pending: BaseException | None = None
        while self.running:
            hook_kind, generator = self.running.pop()
            try:
                left = await _leave_async(generator, error) if hook_kind == ASYNC_GENERATOR else _leave(generator, error)
                if left:
                    error, suppressed, pending = None, True, None
            except BaseException as raised:  # noqa: BLE001 - it replaces the error for the hooks left
                raised.__context__ = raised.__context__ or error
                error = pending = raised
        if pending is not None:
            raise pending
        return received and suppressed


def _leave(generator: Any, error: BaseException | None) -> bool:
    """Resumes a hook's generator after its yield, as contextlib.contextmanager does; True if it suppressed `error`."""
    if error is None:
        try:
            next(generator)
        except StopIteration:
            return False
        raise RuntimeError("generator didn't stop")
    try:
        generator.throw(error)
    except StopIteration as stop:
        return stop is not error
    except BaseException as raised:
        if raised is error:
            return False
        raise
    raise RuntimeError("generator didn't stop after throw()")


async def _leave_async(generator: Any, error: BaseException | None) -> bool:
    """`_leave`, for an async generator hook (as contextlib.asynccontextmanager does)."""
    if error is None:
        try:
            await generator.__anext__()
        except StopAsyncIteration:
            return False
        raise RuntimeError("generator didn't stop")
    try:
        await generator.athrow(error)
    except StopAsyncIteration as stop:
        return stop is not error
    except BaseException as raised:
        if raised is error:
            return False
        raise
    raise RuntimeError("generator didn't stop after athrow()")


class ExtensionsRunner(SchemaExtensionsRunner):
    def operation(self) -> Any:
        return _Phase(self.extensions, "on_operation")

    def parsing(self) -> Any:
        return _Phase(self.extensions, "on_parse")

    def validation(self) -> Any:
        return _Phase(self.extensions, "on_validate")

    def executing(self) -> Any:
        return _Phase(self.extensions, "on_execute")
