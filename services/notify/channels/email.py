"""E-mail (电子邮件) over SMTP with aiosmtplib: STARTTLS or implicit TLS, and login, as ``notify.yaml`` says."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from civicbus.district import EmailChannel, SmtpServer

from ..messages import Message
from .base import DeliveryError, SendContext


def email_for(server: SmtpServer, channel: EmailChannel, message: Message, context: SendContext) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = server.sender
    mail["To"] = ", ".join(channel.to)
    mail["Subject"] = message.title
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(idstring=context.key.replace(":", "."), domain=server.sender.split("@", 1)[1])
    mail["X-Civicbus-Ticket"] = context.ticket_id
    mail.set_content(message.text)  # UTF-8, transfer-encoded as the text needs
    return mail


class EmailAdapter:
    def __init__(self, channel: EmailChannel, server: SmtpServer) -> None:
        self._channel = channel
        self._server = server

    async def send(self, message: Message, context: SendContext) -> None:
        server = self._server
        try:
            await aiosmtplib.send(
                email_for(server, self._channel, message, context),
                hostname=server.host,
                port=server.port,
                start_tls=server.starttls,
                use_tls=server.implicit_tls,
                username=server.username or None,
                password=server.password or None,
                timeout=server.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise DeliveryError("rejected", f"recipients refused: {error}", retryable=False) from error
        except aiosmtplib.SMTPAuthenticationError as error:
            raise DeliveryError("rejected", f"SMTP login refused: {error}", retryable=False) from error
        except aiosmtplib.SMTPResponseException as error:
            # 4xx is the server's "try later", 5xx its "never".
            raise DeliveryError("rejected", f"SMTP {error.code}: {error.message}", retryable=error.code < 500) from error
        except aiosmtplib.SMTPTimeoutError as error:
            raise DeliveryError("timeout", f"SMTP timeout: {error}", retryable=True) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryError("connect_error", f"{type(error).__name__}: {error}", retryable=True) from error
