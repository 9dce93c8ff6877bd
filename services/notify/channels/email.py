"""E-mail (电子邮件) over SMTP with aiosmtplib: STARTTLS or implicit TLS, and login, as ``notify.yaml`` says."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated, Literal

import aiosmtplib
from pydantic import Field, model_validator

from civicbus.district import Strict

from ..messages import Message
from .base import DeliveryError, SendContext


class EmailChannel(Strict):
    """E-mail (电子邮件) over the SMTP server of ``notify.yaml``."""

    type: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    rate_per_minute: int | None = Field(default=None, gt=0)


class SmtpServer(Strict):
    """The mail server e-mail channels send through (aiosmtplib): ``smtp`` in notify.yaml."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    starttls: bool = Field(default=True, description="upgrade the connection with STARTTLS (port 587)")
    implicit_tls: bool = Field(default=False, description="TLS from the first byte (port 465)")
    username: str | None = Field(default=None, description="log in when given (an empty value: no login)")
    password: str | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="the From address")
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpServer:
        if self.starttls and self.implicit_tls:
            raise ValueError("choose starttls or implicit_tls, not both")
        return self


def email_for(server: SmtpServer, channel: EmailChannel, message: Message, context: SendContext) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = server.sender
    mail["To"] = ", ".join(channel.to)
    mail["Subject"] = message.title
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(idstring=context.key.replace(":", "."), domain=server.sender.split("@", 1)[1])
    mail["X-Civicbus-Ticket"] = context.ticket_id
    # Plain text, the workbench page's link on a line of its own (mail readers make it a link). UTF-8,
    # transfer-encoded as the text needs.
    mail.set_content(f"{message.text}\n\n在工作台{message.button}：{message.url}\n")
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
