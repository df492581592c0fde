"""The portal's addresses: sign-in and home, then one block per role.

* researcher: ``datasets/``, ``releases/``, ``verifications/``, ``budget/``
* custodian: ``custody/``
* auditor: ``audit/``
"""

from portal.views import auditor, auth, custodian, researcher

app_name = "portal"

urlpatterns = [*auth.urlpatterns, *researcher.urlpatterns, *custodian.urlpatterns, *auditor.urlpatterns]
