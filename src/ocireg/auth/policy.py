"""`http.accessControl` decisions, with zot's rules.

For a repository, the longest glob that matches it chooses the rules (one rule set, never
a merge). Within it an action is allowed when a policy names the user (those naming the
user first, then those naming one of the user's groups) with that action and its
conditions hold; else when `defaultPolicy` has it and the user is authenticated; else when
`anonymousPolicy` has it and the user is anonymous. Failing all of that, `adminPolicy`
allows its actions to its users and groups on every repository, when its conditions hold.

Conditions (zot's CEL expressions, `auth/conditions.py`) are evaluated for a request
(`decide`). Listings (`can`: the catalog, search, the pages' lists) do not evaluate them,
as zot's catalog does not: a conditional policy counts there as granting, so a listing may
show a repository whose pull is then refused, never hide one that is not. A mount's source
is checked both ways: unreadable, the mount is refused; readable only under conditions the
request does not meet, it becomes a plain upload (auth/middleware.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ocireg.auth.conditions import Conditions, RequestFacts, Subject, all_conditions
from ocireg.auth.settings import AccessControlSettings, Policy, RepositoryRules
from ocireg.globs import glob_match
from ocireg.identity import Identity


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""  # the message of the condition that refused, when one did


ALLOWED = Decision(True)
REFUSED = Decision(False)


class AccessPolicy:
    def __init__(self, settings: AccessControlSettings) -> None:
        """Raises ConfigError when a condition does not compile."""
        self.settings = settings
        # Longest first, so the first match is the one zot would pick.
        self._globs = sorted(settings.repositories, key=len, reverse=True)
        # Compiled once per configuration; None (and no CEL library loaded) without any.
        has_conditions = next(all_conditions(settings), None) is not None
        self.conditions = Conditions(settings) if has_conditions else None
        self._last_groups: tuple[tuple[str, tuple[str, ...]], frozenset[str]] | None = None

    def groups_of(self, user: str | None) -> tuple[str, ...]:
        if user is None:
            return ()
        return tuple(sorted(g for g, users in self.settings.groups.items() if user in users))

    def rules_for(self, repository: str) -> RepositoryRules | None:
        for glob in self._globs:
            if glob_match(glob, repository):
                return self.settings.repositories[glob]
        return None

    def can(self, identity: Identity, action: str, repository: str) -> bool:
        """For listings: a policy's conditions are taken to hold (see the module's doc)."""
        return self._decide(identity, action, repository, None).allowed

    def decide(
        self, identity: Identity, action: str, repository: str, facts: RequestFacts
    ) -> Decision:
        """For one request: conditions evaluated against it."""
        return self._decide(identity, action, repository, facts)

    def anonymous_may_do_anything(self) -> bool:
        """Whether some repository grants anonymous users some action (zot then answers the
        `/v2/` ping with 200 rather than 401)."""
        return any(r.anonymous_policy for r in self.settings.repositories.values())

    def metrics_allowed(self, identity: Identity) -> bool:
        if identity.anonymous:
            return "read" in self.settings.metrics_anonymous
        users = self.settings.metrics_users
        return not users or identity.user in users

    def _decide(
        self, identity: Identity, action: str, repository: str, facts: RequestFacts | None
    ) -> Decision:
        # Conditions are evaluated only for a request (`facts`) under a configuration that
        # has some; a listing asks this for every repository it shows, so it builds nothing
        # it does not need (no `Subject`, groups once per identity).
        user, admin = identity.user, self.settings.admin_policy
        groups = self._match_groups(identity)
        subject = None
        if facts is not None and self.conditions is not None:
            is_admin = _names(admin, user, groups)
            subject = Subject(
                user, self._groups(identity), is_admin, action, repository, identity.claims
            )
        reason = ""
        rules = self.rules_for(repository)
        if rules is not None:
            decision = self._permitted(user, action, groups, rules, subject, facts)
            if decision.allowed:
                return decision
            reason = decision.reason
        if action in admin.actions and _names(admin, user, groups):
            met, why = self._met(admin, subject, facts)
            if met:
                return ALLOWED
            # As zot: the admin condition's message is the most specific explanation.
            reason = why or reason
        return Decision(False, reason)

    def _permitted(
        self,
        user: str | None,
        action: str,
        groups: frozenset[str],
        rules: RepositoryRules,
        subject: Subject | None,
        facts: RequestFacts | None,
    ) -> Decision:
        if subject is None:  # nothing evaluated: any policy that names the user grants
            for policy in rules.policies:
                if action in policy.actions and _names(policy, user, groups):
                    return ALLOWED
            allowed = action in (rules.anonymous_policy if user is None else rules.default_policy)
            return ALLOWED if allowed else REFUSED
        reason = ""  # as zot: the message of the last condition that refused
        # As zot: the policies naming the user first, then those naming one of the groups.
        # A policy naming both the user and a group is evaluated once, in the first place.
        named = [p for p in rules.policies if user is not None and user in p.users]
        if user is not None:
            by_user = set(map(id, named))
            named += [
                p
                for p in rules.policies
                if id(p) not in by_user and not groups.isdisjoint(p.groups)
            ]
        for policy in named:
            if action not in policy.actions:
                continue
            met, why = self._met(policy, subject, facts)
            if met:
                return ALLOWED
            reason = why or reason
        if user is None:
            return Decision(action in rules.anonymous_policy, reason)
        return Decision(action in rules.default_policy, reason)

    def _met(
        self, policy: Policy, subject: Subject | None, facts: RequestFacts | None
    ) -> tuple[bool, str]:
        if subject is None or facts is None or self.conditions is None:
            return True, ""
        return self.conditions.met(policy, subject, facts)

    def _groups(self, identity: Identity) -> tuple[str, ...]:
        """The user's groups as conditions see them (`req.user.groups`): the identity's
        (a directory's, as it gives them), then those http.accessControl.groups names."""
        if identity.user is None:
            return ()
        return tuple(dict.fromkeys((*identity.groups, *self.groups_of(identity.user))))

    def _match_groups(self, identity: Identity) -> frozenset[str]:
        """The user's groups as policies name them (lower-cased, as zot's keys are); the
        last identity's kept, since a listing asks once per repository for one identity."""
        if identity.user is None:
            return frozenset()
        key = (identity.user, identity.groups)
        if self._last_groups is not None and self._last_groups[0] == key:
            return self._last_groups[1]
        groups = frozenset(g.lower() for g in identity.groups) | set(self.groups_of(identity.user))
        self._last_groups = (key, groups)
        return groups


def _names(policy: Policy, user: str | None, groups: frozenset[str]) -> bool:
    if user is None:
        return False
    return user in policy.users or not groups.isdisjoint(policy.groups)
