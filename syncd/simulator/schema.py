"""The Graph resource types the simulator serves: their properties, defaults and default sets.

The directory types are user, group, servicePrincipal, device and orgContact (a group's members
can be any of them); the property names of device and orgContact are those of Graph's v1.0
metadata (``shared/graph-metadata/v1.0-directory.json``), which a test checks.

Graph answers a GET without ``$select`` with a fixed *default property set* for each type (the
user default set is the eleven properties of the ``user-get`` example; ``accountEnabled`` is
returned only when selected).  A ``$select`` naming a property the type does not have is answered
with 400.  Properties the tenant does not hold are returned as ``null`` (``[]`` for collections),
as Graph does for unset properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One Graph entity type: its OData names and its properties."""

    name: str
    """The type name, e.g. ``user``; ``@odata.type`` is ``#microsoft.graph.<name>``."""
    entity_set: str
    """The collection name used in ``@odata.context``, e.g. ``users``."""
    defaults: dict[str, Any]
    """The default property set, in the order Graph returns it, with each property's unset value."""
    properties: dict[str, Any]
    """Every known property with its unset value."""

    @property
    def odata_type(self) -> str:
        return f"#microsoft.graph.{self.name}"

    def canonical(self, name: str) -> str | None:
        """The property's spelling in Graph, matching case-insensitively, or None if unknown."""
        return _lowercase_index(self).get(name.lower())


_INDEXES: dict[str, dict[str, str]] = {}


def _lowercase_index(resource: ResourceType) -> dict[str, str]:
    index = _INDEXES.get(resource.name)
    if index is None:
        index = {name.lower(): name for name in resource.properties}
        _INDEXES[resource.name] = index
    return index


def _default_set(properties: dict[str, Any], names: str) -> dict[str, Any]:
    return {name: properties[name] for name in names.split()}


def _properties(scalars: str, collections: str = "") -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(scalars.split())
    values.update({name: [] for name in collections.split()})
    return values


_USER_PROPERTIES = _properties(
    """aboutMe accountEnabled ageGroup birthday city companyName consentProvidedForMinor country
    createdDateTime creationType customSecurityAttributes deletedDateTime department displayName
    employeeHireDate employeeId employeeLeaveDateTime employeeOrgData employeeType externalUserState
    externalUserStateChangeDateTime faxNumber givenName hireDate id isResourceAccount jobTitle
    lastPasswordChangeDateTime legalAgeGroupClassification mail mailboxSettings mailNickname mobilePhone
    mySite officeLocation onPremisesDistinguishedName onPremisesDomainName onPremisesExtensionAttributes
    onPremisesImmutableId onPremisesLastSyncDateTime onPremisesSamAccountName onPremisesSecurityIdentifier
    onPremisesSyncEnabled onPremisesUserPrincipalName passwordPolicies passwordProfile postalCode
    preferredDataLocation preferredLanguage preferredName securityIdentifier showInAddressList
    signInActivity signInSessionsValidFromDateTime state streetAddress surname usageLocation
    userPrincipalName userType""",
    """assignedLicenses assignedPlans businessPhones identities imAddresses interests
    licenseAssignmentStates onPremisesProvisioningErrors otherMails pastProjects provisionedPlans
    proxyAddresses responsibilities schools skills""",
)

USER = ResourceType(
    name="user",
    entity_set="users",
    defaults=_default_set(
        _USER_PROPERTIES,
        "businessPhones displayName givenName jobTitle mail mobilePhone officeLocation preferredLanguage "
        "surname userPrincipalName id",
    ),
    properties=_USER_PROPERTIES,
)

_GROUP_PROPERTIES = _properties(
    """classification createdDateTime deletedDateTime description displayName expirationDateTime
    hasMembersWithLicenseErrors id isAssignableToRole licenseProcessingState mail mailEnabled
    mailNickname membershipRule membershipRuleProcessingState onPremisesDomainName
    onPremisesLastSyncDateTime onPremisesNetBiosName onPremisesSamAccountName
    onPremisesSecurityIdentifier onPremisesSyncEnabled preferredDataLocation preferredLanguage
    renewedDateTime securityEnabled securityIdentifier theme uniqueName visibility""",
    """assignedLabels assignedLicenses creationOptions groupTypes onPremisesProvisioningErrors
    proxyAddresses resourceBehaviorOptions resourceProvisioningOptions serviceProvisioningErrors""",
)

GROUP = ResourceType(
    name="group",
    entity_set="groups",
    defaults=_default_set(
        _GROUP_PROPERTIES,
        "id deletedDateTime classification createdDateTime creationOptions description displayName "
        "expirationDateTime groupTypes isAssignableToRole mail mailEnabled mailNickname membershipRule "
        "membershipRuleProcessingState onPremisesDomainName onPremisesLastSyncDateTime "
        "onPremisesNetBiosName onPremisesSamAccountName onPremisesSecurityIdentifier "
        "onPremisesSyncEnabled preferredDataLocation preferredLanguage proxyAddresses renewedDateTime "
        "resourceBehaviorOptions resourceProvisioningOptions securityEnabled securityIdentifier theme "
        "visibility onPremisesProvisioningErrors serviceProvisioningErrors",
    ),
    properties=_GROUP_PROPERTIES,
)

_SERVICE_PRINCIPAL_PROPERTIES = _properties(
    """accountEnabled appDescription appDisplayName appId applicationTemplateId appOwnerOrganizationId
    appRoleAssignmentRequired deletedDateTime description disabledByMicrosoftStatus displayName
    homepage id info loginUrl logoutUrl notes preferredSingleSignOnMode
    preferredTokenSigningKeyThumbprint publisherName samlSingleSignOnSettings servicePrincipalType
    signInAudience tokenEncryptionKeyId verifiedPublisher""",
    """addIns alternativeNames appRoles endpoints keyCredentials notificationEmailAddresses
    oauth2PermissionScopes passwordCredentials replyUrls resourceSpecificApplicationPermissions
    servicePrincipalNames tags""",
)

SERVICE_PRINCIPAL = ResourceType(
    name="servicePrincipal",
    entity_set="servicePrincipals",
    defaults=_default_set(
        _SERVICE_PRINCIPAL_PROPERTIES,
        "accountEnabled addIns alternativeNames appDisplayName appId appOwnerOrganizationId "
        "appRoleAssignmentRequired appRoles disabledByMicrosoftStatus displayName endpoints homepage id "
        "verifiedPublisher info keyCredentials logoutUrl oauth2PermissionScopes passwordCredentials "
        "publisherName replyUrls resourceSpecificApplicationPermissions servicePrincipalNames "
        "servicePrincipalType signInAudience tags tokenEncryptionKeyId",
    ),
    properties=_SERVICE_PRINCIPAL_PROPERTIES,
)

_ASSIGNMENT_PROPERTIES = _properties(
    "id deletedDateTime appRoleId createdDateTime principalDisplayName principalId principalType "
    "resourceDisplayName resourceId"
)

APP_ROLE_ASSIGNMENT = ResourceType(
    name="appRoleAssignment",
    entity_set="appRoleAssignments",
    defaults=_ASSIGNMENT_PROPERTIES,
    properties=_ASSIGNMENT_PROPERTIES,
)

_DEVICE_PROPERTIES = _properties(
    """accountEnabled approximateLastSignInDateTime complianceExpirationDateTime deletedDateTime
    deviceCategory deviceId deviceMetadata deviceOwnership deviceVersion displayName
    enrollmentProfileName enrollmentType id isCompliant isManaged isManagementRestricted isRooted
    managementType manufacturer mdmAppId model onPremisesLastSyncDateTime
    onPremisesSecurityIdentifier onPremisesSyncEnabled operatingSystem operatingSystemVersion
    profileType registrationDateTime trustType""",
    "alternativeSecurityIds physicalIds systemLabels",
)

DEVICE = ResourceType(
    name="device",
    entity_set="devices",
    defaults=_default_set(
        _DEVICE_PROPERTIES,
        "id deletedDateTime accountEnabled approximateLastSignInDateTime complianceExpirationDateTime "
        "deviceCategory deviceId deviceMetadata deviceOwnership deviceVersion displayName "
        "enrollmentProfileName enrollmentType isCompliant isManaged isRooted managementType manufacturer "
        "mdmAppId model onPremisesLastSyncDateTime onPremisesSyncEnabled operatingSystem "
        "operatingSystemVersion physicalIds profileType registrationDateTime systemLabels trustType "
        "alternativeSecurityIds",
    ),
    properties=_DEVICE_PROPERTIES,
)

_ORG_CONTACT_PROPERTIES = _properties(
    """companyName deletedDateTime department displayName givenName id jobTitle mail mailNickname
    onPremisesLastSyncDateTime onPremisesSyncEnabled surname""",
    "addresses onPremisesProvisioningErrors phones proxyAddresses serviceProvisioningErrors",
)

ORG_CONTACT = ResourceType(
    name="orgContact",
    entity_set="contacts",
    defaults=_default_set(
        _ORG_CONTACT_PROPERTIES,
        "id deletedDateTime companyName department displayName givenName jobTitle mail mailNickname "
        "onPremisesLastSyncDateTime onPremisesSyncEnabled surname addresses onPremisesProvisioningErrors "
        "phones proxyAddresses serviceProvisioningErrors",
    ),
    properties=_ORG_CONTACT_PROPERTIES,
)

DIRECTORY_TYPES: tuple[ResourceType, ...] = (USER, GROUP, SERVICE_PRINCIPAL, DEVICE, ORG_CONTACT)
"""The directoryObject types a membership (``members``, ``memberOf``, ...) can list."""

BY_KIND: dict[str, ResourceType] = {resource.name: resource for resource in DIRECTORY_TYPES}
"""Directory object types by the ``kind`` the tenant records."""
