"""A small token service for the tests, as Docker Hub's works: a registry
(Debian's docker-registry with `auth: token`) challenges with
`Bearer realm=…,service=…,scope=…`; this service answers anonymous requests
with an RS256 JWT granting pull on the asked repository, signed with a key
whose self-signed certificate the registry trusts (x5c). Signing by the
`openssl` command, so the tests need no crypto library."""

import base64
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(self, workdir, service="upstream-test", users=None):
        # Callers who log in (Basic, as `docker login` does at the realm) get
        # every action they ask for; anonymous ones may only pull.
        self.users = users or {}
        self.key = os.path.join(workdir, "token.key")
        self.cert = os.path.join(workdir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=berth-test-token-issuer", "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.service = service
        self.issuer = "berth-test-issuer"
        self.issued = 0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.lower().startswith("basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if issuer.users.get(name) != password:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    user = name
                token = issuer.token(query.get("scope", []), user)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, scopes, user=None):
        self.issued += 1
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) >= 3 and parts[0] == "repository":
                asked = parts[-1].split(",")
                actions = asked if user else ["pull"]
                access.append({"type": "repository", "name": ":".join(parts[1:-1]), "actions": actions})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": f"t{self.issued}-{now}", "access": access}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{b64url(signature)}"

    def registry_config(self):
        """The `auth:` section of a docker-registry config trusting these tokens."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.service}\n"
                f"    issuer: {self.issuer}\n    rootcertbundle: {self.cert}\n")

    def stop(self):
        self.server.shutdown()
