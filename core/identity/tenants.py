"""Team tenants, their members and roles, and invitations by email.

Roles: a member submits and reads jobs and uploads; an admin also manages members and
API keys; an owner can do everything, including granting ownership. A tenant always
keeps at least one owner, and a personal tenant only ever has its owner.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from core.errors import ConveyorError, ErrorCode
from core.identity import api_keys
from core.identity.access import Principal, outranks
from core.identity.accounts import normalize_email
from core.identity.credentials import new_invitation_token, sha256_hex
from core.models import Invitation, Membership, Role, Tenant, User
from core.settings import Settings


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID | None  # None while invited
    email: str
    role: Role
    status: str  # "active" or "invited"
    since: datetime
    invitation_id: uuid.UUID | None = None


def create(session: Session, user_id: uuid.UUID, name: str) -> Tenant:
    tenant = Tenant(id=uuid.uuid4(), name=name, personal=False)
    session.add(tenant)
    session.flush()
    session.add(Membership(user_id=user_id, tenant_id=tenant.id, role=Role.OWNER))
    session.flush()
    session.refresh(tenant)
    return tenant


def get(session: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise ConveyorError(ErrorCode.TENANT_NOT_FOUND)
    return tenant


def rename(session: Session, principal: Principal, name: str) -> Tenant:
    principal.require_role(Role.OWNER)
    tenant = get(session, principal.tenant_id)
    if tenant.personal:
        raise ConveyorError(ErrorCode.PERSONAL_TENANT, "A personal tenant keeps its name")
    tenant.name = name
    session.flush()
    return tenant


def members(session: Session, tenant_id: uuid.UUID) -> list[Member]:
    """Members (by join date), then pending invitations."""
    active = session.execute(
        select(User.id, User.email, Membership.role, Membership.created_at)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id)
        .order_by(Membership.created_at, User.id)
    ).all()
    invited = session.scalars(
        select(Invitation)
        .where(Invitation.tenant_id == tenant_id)
        .order_by(Invitation.created_at, Invitation.id)
    ).all()
    return [
        Member(row.id, row.email, Role(row.role), "active", row.created_at) for row in active
    ] + [
        Member(None, inv.email, Role(inv.role), "invited", inv.created_at, inv.id)
        for inv in invited
    ]


def _check_may_grant(principal: Principal, role: Role) -> None:
    """Admins manage members; only owners make or unmake owners."""
    mine = principal.require_role(Role.ADMIN)
    if not _may_grant(mine, role):
        raise ConveyorError(
            ErrorCode.FORBIDDEN,
            f"Only an owner can grant or change the {role.value} role",
            required_role=Role.OWNER.value,
        )


@dataclass(frozen=True)
class Added:
    member: Member
    # The secret that joins, to be sent to the email and nowhere else.
    invitation_token: str


def add(session: Session, principal: Principal, email: str, role: Role) -> Added:
    """Invite an email to the tenant. Whether or not it has an account, it joins only
    with the emailed token: an account proves nothing about who reads the mailbox (no
    one verified it at registration), and the answer is the same either way, so an
    admin learns nothing about which addresses are registered."""
    _check_may_grant(principal, role)
    tenant = lock_tenant(session, principal)
    if tenant.personal:
        raise ConveyorError(
            ErrorCode.PERSONAL_TENANT,
            "A personal tenant has only its owner; create a team tenant to add people",
        )
    email = normalize_email(email)
    joined = session.scalar(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant.id, User.email == email)
    )
    if joined is not None:  # the admin sees the members already: this reveals nothing
        raise ConveyorError(ErrorCode.ALREADY_MEMBER, f"{email} is already a member")
    existing = session.scalar(
        select(Invitation).where(Invitation.tenant_id == tenant.id, Invitation.email == email)
    )
    if existing is not None:
        raise ConveyorError(ErrorCode.ALREADY_MEMBER, f"{email} is already invited")
    token = new_invitation_token()
    invitation = Invitation(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        email=email,
        role=role,
        invited_by=principal.user_id,
        token_hash=sha256_hex(token),
    )
    session.add(invitation)
    session.flush()
    session.refresh(invitation)
    member = Member(None, email, role, "invited", invitation.created_at, invitation.id)
    return Added(member, token)


def accept(session: Session, settings: Settings, user: User, token: str) -> tuple[Tenant, Role]:
    """Join the tenant of an invitation to this user's email, by the emailed token;
    the tenant and the user's role in it.

    Locks in the order member management does (the tenant, then the invitation), so an
    acceptance and a demotion of the inviter wait for each other instead of deadlocking,
    and the inviter's rights are read while no one can change them."""
    which = _open_invitation(settings, user, token)
    tenant_id = session.scalar(select(Invitation.tenant_id).where(*which))
    if tenant_id is None:
        raise _no_invitation()
    tenant = session.get(Tenant, tenant_id, with_for_update=True)
    invitation = session.scalar(select(Invitation).where(*which).with_for_update())
    if tenant is None or invitation is None or not _inviter_may_still_grant(session, invitation):
        # Gone meanwhile, or the rights that made it are (the inviter left, was removed
        # or demoted): so is the invitation.
        raise _no_invitation()
    membership = session.get(Membership, (user.id, tenant.id))
    if membership is None:
        membership = Membership(user_id=user.id, tenant_id=tenant.id, role=invitation.role)
        session.add(membership)
    session.delete(invitation)
    session.flush()
    return tenant, Role(membership.role)


def _open_invitation(settings: Settings, user: User, token: str) -> list[ColumnElement[bool]]:
    """What finds the unexpired invitation to this user's email with this token."""
    return [
        Invitation.token_hash == sha256_hex(token),
        Invitation.email == user.email,
        Invitation.created_at > func.now() - timedelta(days=settings.invitation_days),
    ]


def _no_invitation() -> ConveyorError:
    return ConveyorError(
        ErrorCode.INVITATION_NOT_FOUND, "No open invitation for your email matches this token"
    )


def _inviter_may_still_grant(session: Session, invitation: Invitation) -> bool:
    if invitation.invited_by is None:
        return False
    role = session.scalar(
        select(Membership.role).where(
            Membership.tenant_id == invitation.tenant_id,
            Membership.user_id == invitation.invited_by,
        )
    )
    return role is not None and _may_grant(Role(role), Role(invitation.role))


def _may_grant(granter: Role, role: Role) -> bool:
    return outranks(granter, Role.ADMIN) and outranks(granter, role)


def _drop_invitations_beyond(
    session: Session, tenant_id: uuid.UUID, inviter: uuid.UUID, role: Role | None
) -> None:
    """Pending invitations die with the rights that made them: those `inviter` could
    not make with `role` (None: no longer a member)."""
    mine = session.scalars(
        select(Invitation).where(
            Invitation.tenant_id == tenant_id, Invitation.invited_by == inviter
        )
    ).all()
    dead = [inv.id for inv in mine if role is None or not _may_grant(role, Role(inv.role))]
    if dead:
        session.execute(delete(Invitation).where(Invitation.id.in_(dead)))


def lock_tenant(session: Session, principal: Principal) -> Tenant:
    """Serialise changes to one tenant's members, and re-check the caller's role under
    the lock: a role read before it may have changed since."""
    tenant = session.get(Tenant, principal.tenant_id, with_for_update=True)
    if tenant is None:
        raise ConveyorError(ErrorCode.TENANT_NOT_FOUND)
    if principal.user_id is not None and principal.role is not None:
        current = session.scalar(
            select(Membership.role).where(
                Membership.tenant_id == tenant.id, Membership.user_id == principal.user_id
            )
        )
        if current is None:
            raise ConveyorError(ErrorCode.TENANT_NOT_FOUND)
        if Role(current) is not principal.role:
            raise ConveyorError(ErrorCode.FORBIDDEN, "Your role in this tenant changed; try again")
    return tenant


def _membership_for_update(
    session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> Membership:
    membership = session.get(Membership, (user_id, tenant_id), with_for_update=True)
    if membership is None:
        raise ConveyorError(ErrorCode.MEMBER_NOT_FOUND)
    return membership


def _check_not_last_owner(session: Session, tenant_id: uuid.UUID) -> None:
    # Under the tenant lock, so two owners stepping down at once cannot both pass.
    owners = session.scalars(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant_id, Membership.role == Role.OWNER
        )
    ).all()
    if len(owners) <= 1:
        raise ConveyorError(ErrorCode.LAST_OWNER)


def change_role(session: Session, principal: Principal, user_id: uuid.UUID, role: Role) -> Member:
    _check_may_grant(principal, role)
    lock_tenant(session, principal)
    membership = _membership_for_update(session, principal.tenant_id, user_id)
    current = Role(membership.role)
    _check_may_grant(principal, current)
    if current is Role.OWNER and role is not Role.OWNER:
        _check_not_last_owner(session, principal.tenant_id)
    membership.role = role
    if not outranks(role, Role.ADMIN):
        # Keys are an admin's business: one who is no longer admin keeps none.
        api_keys.revoke_created_by(session, principal.tenant_id, user_id)
    _drop_invitations_beyond(session, principal.tenant_id, user_id, role)
    session.flush()
    email = session.scalar(select(User.email).where(User.id == user_id)) or ""
    return Member(user_id, email, role, "active", membership.created_at)


def remove(session: Session, principal: Principal, user_id: uuid.UUID) -> None:
    """Remove a member, or leave (any member may remove themselves)."""
    leaving = principal.user_id == user_id
    if not leaving:
        principal.require_role(Role.ADMIN)
    lock_tenant(session, principal)
    membership = _membership_for_update(session, principal.tenant_id, user_id)
    role = Role(membership.role)
    if not leaving:
        _check_may_grant(principal, role)
    if role is Role.OWNER:
        _check_not_last_owner(session, principal.tenant_id)
    session.delete(membership)
    api_keys.revoke_created_by(session, principal.tenant_id, user_id)
    _drop_invitations_beyond(session, principal.tenant_id, user_id, None)
    session.flush()


def cancel_invitation(session: Session, principal: Principal, invitation_id: uuid.UUID) -> None:
    principal.require_role(Role.ADMIN)
    lock_tenant(session, principal)
    invitation = session.scalar(
        select(Invitation)
        .where(Invitation.id == invitation_id, Invitation.tenant_id == principal.tenant_id)
        .with_for_update()
    )
    if invitation is None:
        raise ConveyorError(ErrorCode.INVITATION_NOT_FOUND)
    # Whoever could not have made the invitation cannot take it back either.
    _check_may_grant(principal, Role(invitation.role))
    session.delete(invitation)
    session.flush()
