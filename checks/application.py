"""Layer 7: the application protocol answers as it should (HTTP, SMTP, POP3, IMAP, SSH, DNS)."""
