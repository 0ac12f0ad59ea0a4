"""Alert rules in the registry: list, read, create, replace, partially update, delete.

Every write is validated by ``core.rules.Rule``, the model the alerts engine loads rules with, so a rule the API
accepts is a rule the engine can run. The alerts service reads rules from the registry when it (re)loads them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from api.auth import ADMINS, STAFF
from api.deps import RegistryDep
from api.errors import conflict, domain_invalid, not_found
from api.schemas import ErrorOut, RuleIn, RuleOut, RulePatch
from core.registry import DuplicateRule, Registry, RuleNotFound
from core.rules import Rule

router = APIRouter(prefix="/rules", tags=["rules"])

# 32-bit: rules.id is INTEGER, and PostgreSQL refuses a larger number in the query itself.
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="rule id")]

_RULE_FIELDS = tuple(n for n in Rule.model_fields if n != "id")
# Words in Rule's cross-field messages that point at a field without being its name.
_RULE_ALIASES = {"level": "levels", "windows_h": "levels", "rules apply to": "station_kind"}

_NOT_FOUND = {404: {"model": ErrorOut, "description": "no rule with this id"}}
_CONFLICT = {409: {"model": ErrorOut, "description": "another rule has this name"}}
# Reading rules: duty staff and up; changing them: admins only, since a rule applies to the whole district.
_READ, _WRITE = [Depends(STAFF)], [Depends(ADMINS)]


def _validate(data: dict[str, Any]) -> Rule:
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        domain_invalid(exc, "body", _RULE_FIELDS, _RULE_ALIASES)


def _get(registry: Registry, rule_id: int) -> Rule:
    try:
        return registry.get_rule(rule_id)
    except RuleNotFound:
        not_found("rule", rule_id)


def _save(registry: Registry, rule: Rule, rule_id: int | None) -> RuleOut:
    try:
        saved = registry.create_rule(rule) if rule_id is None else registry.update_rule(rule_id, rule)
    except DuplicateRule:
        conflict(f"a rule named {rule.name!r} exists")
    except RuleNotFound:  # deleted meanwhile
        not_found("rule", rule_id)
    except IntegrityError:  # the unique name, taken by a concurrent write between the check and the insert
        conflict(f"a rule named {rule.name!r} exists")
    return RuleOut.from_domain(saved)


@router.get("", response_model=list[RuleOut], summary="List rules, by id", dependencies=_READ)
def list_rules(
    registry: RegistryDep,
    enabled: Annotated[bool | None, Query(description="only enabled (true) or disabled (false) rules")] = None,
) -> list[RuleOut]:
    return [RuleOut.from_domain(r) for r in registry.list_rules(enabled=enabled)]


@router.get("/{rule_id}", response_model=RuleOut, summary="One rule", responses=_NOT_FOUND, dependencies=_READ)
def get_rule(rule_id: RuleId, registry: RegistryDep) -> RuleOut:
    return RuleOut.from_domain(_get(registry, rule_id))


@router.post("", response_model=RuleOut, status_code=201, summary="Create a rule", responses=_CONFLICT,
             dependencies=_WRITE)
def create_rule(body: Annotated[RuleIn, Body()], registry: RegistryDep) -> RuleOut:  # type: ignore[valid-type]
    rule = _validate(body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]
    return _save(registry, rule, None)


@router.put("/{rule_id}", response_model=RuleOut, summary="Replace a rule",
            description="The body is the whole rule; fields left out take their defaults.",
            responses={**_NOT_FOUND, **_CONFLICT}, dependencies=_WRITE)
def replace_rule(rule_id: RuleId, body: Annotated[RuleIn, Body()],  # type: ignore[valid-type]
                 registry: RegistryDep) -> RuleOut:
    _get(registry, rule_id)  # an unknown id is a 404 before the rule's cross-field checks run
    rule = _validate(body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]
    return _save(registry, rule, rule_id)


@router.patch("/{rule_id}", response_model=RuleOut, summary="Change some fields of a rule",
              description='E.g. `{"enabled": false}`. Each field given replaces the stored value (`levels` and '
                          '`params` as a whole); the merged rule is then validated like a new one.',
              responses={**_NOT_FOUND, **_CONFLICT}, dependencies=_WRITE)
def patch_rule(rule_id: RuleId, body: Annotated[RulePatch, Body()],  # type: ignore[valid-type]
               registry: RegistryDep) -> RuleOut:
    stored = _get(registry, rule_id)
    merged = {**stored.model_dump(exclude={"id"}), **body.model_dump(exclude_unset=True)}  # type: ignore[attr-defined]
    return _save(registry, _validate(merged), rule_id)


@router.delete("/{rule_id}", status_code=204, response_class=Response, summary="Delete a rule",
               responses=_NOT_FOUND, dependencies=_WRITE)
def delete_rule(rule_id: RuleId, registry: RegistryDep) -> Response:
    try:
        registry.delete_rule(rule_id)
    except RuleNotFound:
        not_found("rule", rule_id)
    return Response(status_code=204)
