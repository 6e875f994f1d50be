"""Web Push (issue 17): notifications for users whose app is closed or in the background.

``keys`` holds the server's VAPID identity, ``senders`` the ways a push leaves (Web Push, FCM), ``payloads``
what a notification says, ``service`` the rules of when to push and the stored queue's worker.
"""

from hubbub.services.webpush.service import WebPushService

__all__ = ["WebPushService"]
