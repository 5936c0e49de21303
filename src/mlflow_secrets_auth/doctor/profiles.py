"""Profiles (SPEC §11): which profiles the configuration file defines, and which to check.

With profiles, the credential chain runs once per profile (or for the one ``--profile`` names,
or for the profile that serves the ``--dry-run`` URL), and each of its checks says which.
"""

from __future__ import annotations

import dataclasses

from ..backends import create_store
from ..errors import ConfigurationError
from ..hosts import origin_of
from ..profiles import ENV_PROFILE, Profile, ProfileError, ProfileFile, load_profiles
from ..settings import Settings, load_general
from .credential_chain import _credential_chain
from .describe import _describe
from .model import Check, _Run

TITLE = "Profiles"


def _profiles(run: _Run, wanted: str | None, dry_run_url: str | None) -> list[Profile] | None:
    """The profiles to check; None when the environment alone configures the plugin (and no
    ``--profile`` asks otherwise), so the checks run as they always did."""
    try:
        general = load_general(run.env)
        profiles = load_profiles(run.env, general, source=ProfileFile())
    except ProfileError as error:
        run.add(Check("profiles", TITLE, "failed", str(error), _profile_fix(error)))
        run.blocked = "the configuration file is wrong"
        return []
    except ConfigurationError:
        return None  # the environment's own problem: the configuration check reports it
    has_file = any(p.rules is not None for p in profiles.profiles)
    if not has_file and wanted in (None, ENV_PROFILE):
        return None
    run.general = general
    listed = "; ".join(
        f"{p.name} ({p.backend}, {p.origin_text}"
        + (f", hosts {', '.join(map(str, p.rules))})" if p.rules is not None else ")")
        for p in profiles.profiles
    )
    chosen = list(profiles.profiles)
    detail = f"{len(chosen)} profile(s): {listed}"
    if wanted is not None:
        found = profiles.get(wanted)
        if found is None:
            return _refuse(
                run,
                f"--profile {wanted} names no profile ({profiles.summary()})",
                f"use one of {', '.join(profiles.names) or 'the profiles in the file'}",
                "the profile does not exist",
            )
        chosen, detail = [found], f"{detail}; checking {wanted} (--profile)"
    elif dry_run_url is not None:
        origin = origin_of(dry_run_url)
        found = profiles.select(origin.host, origin.port)
        if found is None:
            return _refuse(
                run,
                f"no profile serves {origin} ({profiles.summary()}), so the dry run would carry "
                "no credential",
                f"add {origin.host}:{origin.port} to the hosts of a profile in {profiles.path}",
                "no profile serves the dry-run URL",
            )
        chosen, detail = [found], f"{detail}; the dry-run URL {origin} is served by {found.name}"
    run.add(Check("profiles", TITLE, "passed", detail))
    return chosen


def _refuse(run: _Run, detail: str, fix: str, blocked: str) -> list[Profile]:
    """A failed profiles check: nothing to diagnose."""
    run.add(Check("profiles", TITLE, "failed", detail, fix))
    run.blocked = blocked
    return []


def _profile_fix(error: ProfileError) -> str:
    where = f"[profiles.{error.profile}]" if error.profile else "the file"
    key = f", key {error.key}" if error.key else ""
    return f"correct {where}{key} in {error.path}"


def _profile_chain(run: _Run, profile: Profile) -> None:
    """The configuration and credential checks for one profile, each tagged with its name."""
    assert run.general is not None
    start = len(run.checks)
    run.profile, run.settings = profile, Settings(run.general, profile.settings)
    run.fetched = run.credential = None
    run.blocked = None
    try:
        run.backend = create_store(profile.settings)
    except ConfigurationError as error:  # the store's SDK is missing, or the store is broken
        run.backend = None
        run.add(Check("configuration", "Configuration", "failed", str(error), str(error)))
        run.blocked = "the store cannot be used"
    else:
        detail = f"{profile.backend} chosen: {_describe(profile.settings, run.env)}"
        run.add(Check("configuration", "Configuration", "passed", detail))
        run.guarded("secret_read", "Secret read", lambda: _credential_chain(run))
    run.checks[start:] = [dataclasses.replace(c, profile=profile.name) for c in run.checks[start:]]
