"""`http.accessControl` decisions, with zot's rules.

For a repository, the longest glob that matches it chooses the rules (one rule set, never
a merge). Within it an action is allowed when a policy names the user, or one of the
user's groups, with that action; else when `defaultPolicy` has it and the user is
authenticated; else when `anonymousPolicy` has it and the user is anonymous. Failing all
of that, `adminPolicy` allows its actions to its users and groups on every repository.
"""

from __future__ import annotations

from ocireg.auth.settings import AccessControlSettings, Policy, RepositoryRules
from ocireg.globs import glob_match
from ocireg.identity import Identity


class AccessPolicy:
    def __init__(self, settings: AccessControlSettings) -> None:
        self.settings = settings
        # Longest first, so the first match is the one zot would pick.
        self._globs = sorted(settings.repositories, key=len, reverse=True)

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
        rules = self.rules_for(repository)
        if rules is not None and self._permitted(identity, action, rules):
            return True
        admin = self.settings.admin_policy
        return action in admin.actions and self._names(admin, identity)

    def anonymous_may_do_anything(self) -> bool:
        """Whether some repository grants anonymous users some action (zot then answers the
        `/v2/` ping with 200 rather than 401)."""
        return any(r.anonymous_policy for r in self.settings.repositories.values())

    def metrics_allowed(self, identity: Identity) -> bool:
        if identity.anonymous:
            return "read" in self.settings.metrics_anonymous
        users = self.settings.metrics_users
        return not users or identity.user in users

    def _permitted(self, identity: Identity, action: str, rules: RepositoryRules) -> bool:
        for policy in rules.policies:
            if action in policy.actions and self._names(policy, identity):
                return True
        if identity.anonymous:
            return action in rules.anonymous_policy
        return action in rules.default_policy

    def _names(self, policy: Policy, identity: Identity) -> bool:
        if identity.user is None:
            return False
        if identity.user in policy.users:
            return True
        groups = {g.lower() for g in identity.groups} | set(self.groups_of(identity.user))
        return not groups.isdisjoint(policy.groups)
