"""Independent peers of the alert tests: Python's json and email modules read what the
alerts sent, NumPy computes adaptive thresholds, and aiosmtpd is a real SMTP server.

  alert_peers.py json FILE            the JSON document, re-dumped with sorted keys
  alert_peers.py mail FILE            the mail's headers and body as JSON (email module)
  alert_peers.py mad K X...           median(X) + K * median(|X - median(X)|) (NumPy)
  alert_peers.py smtp DIR [USER PW]   an SMTP server on 127.0.0.1: writes its port to
                                      DIR/port, each message to DIR/N.eml with its
                                      envelope (and login) in DIR/N.json; runs until killed
"""
import asyncio
import email
import email.policy
import json
import os
import sys


def main():
    cmd = sys.argv[1]
    if cmd == "json":
        with open(sys.argv[2], encoding="utf-8") as f:
            print(json.dumps(json.load(f), sort_keys=True, ensure_ascii=False))
    elif cmd == "mail":
        with open(sys.argv[2], "rb") as f:
            m = email.message_from_binary_file(f, policy=email.policy.default)
        print(json.dumps({
            "from": m["From"], "to": m["To"], "subject": m["Subject"], "date": m["Date"],
            "content_type": m.get_content_type(), "charset": m.get_content_charset(),
            "body": m.get_content(),
        }, sort_keys=True, ensure_ascii=False))
    elif cmd == "mad":
        import numpy as np
        k = float(sys.argv[2])
        x = np.array([float(v) for v in sys.argv[3:]])
        med = np.median(x)
        print(repr(float(med + k * np.median(np.abs(x - med)))))
    elif cmd == "smtp":
        smtp(sys.argv[2], sys.argv[3:5])


def smtp(directory, login):
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    class Handler:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Handler.count += 1
            path = os.path.join(directory, f"{Handler.count}")
            with open(path + ".json", "w", encoding="utf-8") as f:
                login_data = session.auth_data
                json.dump({
                    "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                    "login": login_data.login.decode() if isinstance(login_data, LoginPassword) else None,
                }, f)
            with open(path + ".tmp", "wb") as f:
                f.write(envelope.original_content)
            os.rename(path + ".tmp", path + ".eml")  # the test waits for this name
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and [data.login.decode(), data.password.decode()] == login
        return AuthResult(success=ok, auth_data=data)

    handler = Handler()

    def factory():
        if login:
            return SMTP(handler, hostname="localhost", authenticator=authenticator,
                        auth_required=True, auth_require_tls=False)
        return SMTP(handler, hostname="localhost")

    async def serve():
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with open(os.path.join(directory, "port.tmp"), "w", encoding="utf-8") as f:
            f.write(str(port))
        os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
