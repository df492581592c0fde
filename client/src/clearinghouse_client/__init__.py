"""Python client for the clinical data clearing-house API (``pip install ./client``)."""

__version__ = "0.1.0"

from clearinghouse_client.client import Client  # noqa: E402
from clearinghouse_client.errors import ClearinghouseError  # noqa: E402
from clearinghouse_client.models import (Answer, Budget, Dataset, Preview, Release, Run, Token, User,  # noqa: E402
                                         Verification)

__all__ = ["Answer", "Budget", "Client", "ClearinghouseError", "Dataset", "Preview", "Release", "Run", "Token",
           "User", "Verification", "__version__"]
