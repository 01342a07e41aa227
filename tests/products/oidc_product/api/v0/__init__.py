"""The product trusts the OpenID Connect issuers of TEST_ISSUERS (the JWKS
server of tests/test_auth_oidc.py, one realm per issuer)."""
import os

from apiphant.auth import Issuer

issuers = [Issuer(url, audience='oidc-product', roles='realm_access.roles', leeway=30,
                  refetch=float(os.environ.get('TEST_REFETCH', '30')))
           for url in os.environ['TEST_ISSUERS'].split()]
