"""The words: what each packet of a session means, and the story of the session, in en/es/ca.

The analysis (:mod:`netcheck.pcap.sessions`) tags events with codes such as
``("syn", isn)`` or ``("rst", "server", "refused")``; here each code becomes a sentence in
the language asked for, in the vocabulary of the course (A and B for the initial sequence
numbers, A+1 and B+1 for what the handshake acknowledges). The session story is built from
the netcheck-pcap/1 session object only, so ``pcap`` and ``trace`` tell it the same way.
"""

from __future__ import annotations

from typing import Any, Optional

LANGS = ("en", "es", "ca")

# code -> (English, Spanish, Catalan)
TEXTS: dict[str, tuple[str, str, str]] = {
    "client": ("client", "cliente", "client"),
    "server": ("server", "servidor", "servidor"),
    "Client": ("Client", "Cliente", "Client"),
    "Server": ("Server", "Servidor", "Servidor"),
    "syn": ("SYN: {client} opens, initial sequence number A = {isn}",
            "SYN: el {client} abre la conexión, número de secuencia inicial A = {isn}",
            "SYN: el {client} obre la connexió, número de seqüència inicial A = {isn}"),
    "syn_retry": ("SYN sent again (attempt {k}): no answer yet",
                  "SYN reenviado (intento {k}): aún sin respuesta",
                  "SYN reenviat (intent {k}): encara sense resposta"),
    "synack": ("SYN-ACK: {server} accepts, acknowledges A+1, its own ISN B = {isn}",
               "SYN-ACK: el {server} acepta, confirma A+1 y elige su ISN B = {isn}",
               "SYN-ACK: el {server} accepta, confirma A+1 i tria el seu ISN B = {isn}"),
    "synack_retry": ("SYN-ACK sent again (attempt {k}): the client's ACK did not arrive",
                     "SYN-ACK reenviado (intento {k}): el ACK del cliente no llegó",
                     "SYN-ACK reenviat (intent {k}): l'ACK del client no ha arribat"),
    "hs_ack": ("ACK: {client} acknowledges B+1; handshake complete{rtt}",
               "ACK: el {client} confirma B+1; negociación en tres pasos completa{rtt}",
               "ACK: el {client} confirma B+1; negociació en tres passos completa{rtt}"),
    "irtt": (" (iRTT {ms} ms)", " (iRTT {ms} ms)", " (iRTT {ms} ms)"),
    "ack": ("ACK: {side} has received up to byte {n}",
            "ACK: el {side} ha recibido hasta el byte {n}",
            "ACK: el {side} ha rebut fins al byte {n}"),
    "data": ("The {side} sends {n} bytes", "El {side} envía {n} bytes",
             "El {side} envia {n} bytes"),
    "tls": ("TLS: {msgs}", "TLS: {msgs}", "TLS: {msgs}"),
    "sni": ("SNI {sni}", "SNI {sni}", "SNI {sni}"),
    "http_req": ("HTTP request: {line}", "Petición HTTP: {line}", "Petició HTTP: {line}"),
    "http_resp": ("HTTP response: {line}", "Respuesta HTTP: {line}", "Resposta HTTP: {line}"),
    "line": ("{line}", "{line}", "{line}"),
    "fin_first": ("FIN: {side} closes first: it has nothing more to send",
                  "FIN: el {side} cierra primero: no tiene nada más que enviar",
                  "FIN: el {side} tanca primer: no té res més per enviar"),
    "fin_second": ("FIN: {side} closes its side too",
                   "FIN: el {side} también cierra su sentido",
                   "FIN: el {side} també tanca el seu sentit"),
    "fin_simul": ("FIN: {side} closes at the same time (simultaneous close: the FINs crossed)",
                  "FIN: el {side} cierra a la vez (cierre simultáneo: los FIN se cruzan)",
                  "FIN: el {side} tanca alhora (tancament simultani: els FIN es creuen)"),
    "fin_again": ("FIN sent again", "FIN reenviado", "FIN reenviat"),
    "fin_ack": ("ACK: {side} acknowledges the FIN (it may still send data: half-close)",
                "ACK: el {side} confirma el FIN (aún puede enviar datos: semicierre)",
                "ACK: el {side} confirma el FIN (encara pot enviar dades: semitancament)"),
    "last_ack": ("ACK of the last FIN: connection closed",
                 "ACK del último FIN: conexión cerrada",
                 "ACK de l'últim FIN: connexió tancada"),
    "rst_refused": ("RST: {side} refuses the connection: nothing listens on that port "
                    "(or a firewall rejects it)",
                    "RST: el {side} rechaza la conexión: nada escucha en ese puerto "
                    "(o un cortafuegos la rechaza)",
                    "RST: el {side} rebutja la connexió: res no escolta en aquest port "
                    "(o un tallafocs la rebutja)"),
    "rst_after_fin": ("RST: {side} aborts after the close began (data arrived for a closed "
                      "socket)",
                      "RST: el {side} aborta tras iniciarse el cierre (llegaron datos a un "
                      "socket cerrado)",
                      "RST: el {side} avorta després de començar el tancament (han arribat "
                      "dades a un sòcol tancat)"),
    "rst_abort": ("RST: {side} aborts the connection", "RST: el {side} aborta la conexión",
                  "RST: el {side} avorta la connexió"),
    "rst_again": ("RST again", "RST de nuevo", "RST de nou"),
    "retrans": ("[retransmission: sent before, the copy or its ACK was lost]",
                "[retransmisión: ya enviado, se perdió la copia o su ACK]",
                "[retransmissió: ja enviat, s'ha perdut la còpia o el seu ACK]"),
    "fast_retrans": ("[fast retransmission after duplicate ACKs]",
                     "[retransmisión rápida tras ACK duplicados]",
                     "[retransmissió ràpida després d'ACK duplicats]"),
    "spurious": ("[spurious retransmission: data already acknowledged]",
                 "[retransmisión espuria: datos ya confirmados]",
                 "[retransmissió espúria: dades ja confirmades]"),
    "ooo": ("[out of order: arrived after a later segment]",
            "[fuera de orden: llegó después de un segmento posterior]",
            "[fora d'ordre: ha arribat després d'un segment posterior]"),
    "dupack": ("[duplicate ACK #{k}: the receiver still waits for a missing segment]",
               "[ACK duplicado #{k}: el receptor sigue esperando un segmento perdido]",
               "[ACK duplicat #{k}: el receptor encara espera un segment perdut]"),
    "zerowin": ("[zero window: {side}'s receive buffer is full, the peer must wait]",
                "[ventana cero: el búfer de recepción del {side} está lleno, el otro espera]",
                "[finestra zero: el búfer de recepció del {side} és ple, l'altre espera]"),
    "zwp": ("[zero window probe]", "[sonda de ventana cero]", "[sonda de finestra zero]"),
    "keepalive": ("[keep-alive]", "[keep-alive]", "[keep-alive]"),
    "lost": ("[previous segment not captured]", "[segmento anterior no capturado]",
             "[segment anterior no capturat]"),
    "icmp": ("ICMP: {text}", "ICMP: {text}", "ICMP: {text}"),
    # -- session story --
    "story_hs_ok": ("Three-way handshake: SYN (A), SYN-ACK (B, acknowledges A+1), ACK "
                    "(acknowledges B+1){rtt}.",
                    "Negociación en tres pasos: SYN (A), SYN-ACK (B, confirma A+1), ACK "
                    "(confirma B+1){rtt}.",
                    "Negociació en tres passos: SYN (A), SYN-ACK (B, confirma A+1), ACK "
                    "(confirma B+1){rtt}."),
    "story_rtt": (", initial RTT {ms} ms", ", RTT inicial {ms} ms", ", RTT inicial {ms} ms"),
    "story_syn_retries": ("The SYN was sent {k} more time(s) before an answer came.",
                          "El SYN se reenvió {k} vez/veces antes de recibir respuesta.",
                          "El SYN es va reenviar {k} vegada/es abans de rebre resposta."),
    "story_refused": ("The SYN was answered by RST: the server refused the connection (port "
                      "closed, or a firewall rejecting with a reset).",
                      "El SYN recibió un RST: el servidor rechazó la conexión (puerto cerrado "
                      "o un cortafuegos que responde con reset).",
                      "El SYN ha rebut un RST: el servidor ha rebutjat la connexió (port tancat "
                      "o un tallafocs que respon amb reset)."),
    "story_no_answer": ("The SYN was sent {k} time(s) and never answered: the packets are "
                        "dropped on the way (firewall) or the host is unreachable.",
                        "El SYN se envió {k} vez/veces sin respuesta: los paquetes se descartan "
                        "por el camino (cortafuegos) o el equipo es inalcanzable.",
                        "El SYN s'ha enviat {k} vegada/es sense resposta: els paquets es "
                        "descarten pel camí (tallafocs) o l'equip és inabastable."),
    "story_icmp": ("An ICMP error came back for it: {text}.",
                   "Volvió un error ICMP: {text}.", "Ha tornat un error ICMP: {text}."),
    "story_no_ack": ("SYN and SYN-ACK seen, but not the client's final ACK.",
                     "Se ven SYN y SYN-ACK, pero no el ACK final del cliente.",
                     "Es veuen SYN i SYN-ACK, però no l'ACK final del client."),
    "story_midstream": ("The handshake is not in the capture: it started before the capture "
                        "did.",
                        "La negociación no está en la captura: empezó antes que ella.",
                        "La negociació no és a la captura: va començar abans que ella."),
    "story_bytes": ("Data: client sent {c} bytes, server sent {s} bytes.",
                    "Datos: el cliente envió {c} bytes y el servidor {s} bytes.",
                    "Dades: el client ha enviat {c} bytes i el servidor {s} bytes."),
    "story_tls": ("TLS {version}{sni}: {msgs}.", "TLS {version}{sni}: {msgs}.",
                  "TLS {version}{sni}: {msgs}."),
    "no_version": ("(version not seen: the hellos were not captured)",
                   "(versión no vista: los hello no se capturaron)",
                   "(versió no vista: els hello no s'han capturat)"),
    "story_sni": (", server name (SNI) {sni}", ", nombre del servidor (SNI) {sni}",
                  ", nom del servidor (SNI) {sni}"),
    "story_http": ("HTTP: {items}.", "HTTP: {items}.", "HTTP: {items}."),
    "story_dialogue": ("{app} dialogue in clear text: {lines}",
                       "Diálogo {app} en claro: {lines}", "Diàleg {app} en clar: {lines}"),
    "story_secret": ("Credentials crossed the network in clear text: anyone capturing "
                     "could read them.",
                     "Las credenciales viajaron en claro: cualquiera que capture las puede "
                     "leer.",
                     "Les credencials han viatjat en clar: qualsevol que capturi les pot "
                     "llegir."),
    "close_four-way": ("Close: {who} sent FIN first; four-way close (FIN, ACK, FIN, ACK).",
                       "Cierre: el {who} envió FIN primero; cierre en cuatro pasos (FIN, ACK, "
                       "FIN, ACK).",
                       "Tancament: el {who} ha enviat FIN primer; tancament en quatre passos "
                       "(FIN, ACK, FIN, ACK)."),
    "close_three-way": ("Close: {who} sent FIN first; the other side answered FIN+ACK in one "
                        "segment, then the last ACK (three packets).",
                        "Cierre: el {who} envió FIN primero; el otro respondió FIN+ACK en un "
                        "solo segmento y luego el último ACK (tres paquetes).",
                        "Tancament: el {who} ha enviat FIN primer; l'altre ha respost FIN+ACK "
                        "en un sol segment i després l'últim ACK (tres paquets)."),
    "close_simultaneous": ("Close: simultaneous, both sides sent FIN before seeing the "
                           "other's.",
                           "Cierre simultáneo: ambos enviaron FIN antes de ver el del otro.",
                           "Tancament simultani: tots dos han enviat FIN abans de veure el de "
                           "l'altre."),
    "close_half": ("Close: only the {who} sent FIN (half-closed: the other side had not "
                   "closed by the end of the capture).",
                   "Cierre: solo el {who} envió FIN (semicerrada: el otro no había cerrado al "
                   "acabar la captura).",
                   "Tancament: només el {who} ha enviat FIN (semitancada: l'altre no havia "
                   "tancat en acabar la captura)."),
    "close_rst": ("Close: the {who} aborted with RST (no orderly FIN exchange).",
                  "Cierre: el {who} abortó con RST (sin intercambio ordenado de FIN).",
                  "Tancament: el {who} ha avortat amb RST (sense intercanvi ordenat de FIN)."),
    "close_rst-after-fin": ("Close: began with FIN by the {who}, ended by RST (data arrived "
                            "for a socket already closed).",
                            "Cierre: empezó con FIN del {who} y acabó con RST (llegaron datos "
                            "a un socket ya cerrado).",
                            "Tancament: ha començat amb FIN del {who} i ha acabat amb RST "
                            "(han arribat dades a un sòcol ja tancat)."),
    "close_refused": ("", "", ""),
    "close_none": ("Still open at the end of the capture (no FIN or RST seen).",
                   "Sigue abierta al final de la captura (no se ve FIN ni RST).",
                   "Continua oberta al final de la captura (no es veu FIN ni RST)."),
    "story_problems": ("Trouble: {items}.", "Problemas: {items}.", "Problemes: {items}."),
    "p_retrans": ("{n} retransmission(s)", "{n} retransmisión(es)", "{n} retransmissió(ns)"),
    "p_dupacks": ("{n} duplicate ACK(s)", "{n} ACK duplicado(s)", "{n} ACK duplicat(s)"),
    "p_zero": ("{n} zero window(s)", "{n} ventana(s) cero", "{n} finestra/es zero"),
    "p_ooo": ("{n} out-of-order segment(s)", "{n} segmento(s) fuera de orden",
              "{n} segment(s) fora d'ordre"),
}

TLS_SPACED = {
    "ClientHello": "Client Hello", "ServerHello": "Server Hello",
    "HelloRetryRequest": "Hello Retry Request", "Certificate": "Certificate",
    "ServerKeyExchange": "Server Key Exchange", "ServerHelloDone": "Server Hello Done",
    "ClientKeyExchange": "Client Key Exchange", "ChangeCipherSpec": "Change Cipher Spec",
    "EncryptedHandshakeMessage": "Encrypted Handshake Message",
    "ApplicationData": "Application Data", "EncryptedAlert": "Encrypted Alert",
    "NewSessionTicket": "New Session Ticket", "EncryptedExtensions": "Encrypted Extensions",
    "CertificateRequest": "Certificate Request", "CertificateVerify": "Certificate Verify",
    "Finished": "Finished", "Alert": "Alert", "Heartbeat": "Heartbeat",
}

ICMP4 = {0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
         8: "echo request", 11: "time exceeded", 12: "parameter problem"}
ICMP4_UNREACH = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
                 3: "port unreachable", 4: "fragmentation needed", 9: "network prohibited",
                 10: "host prohibited", 13: "administratively prohibited"}
ICMP6 = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
         4: "parameter problem", 128: "echo request", 129: "echo reply",
         133: "router solicitation", 134: "router advertisement",
         135: "neighbor solicitation", 136: "neighbor advertisement"}
ICMP6_UNREACH = {0: "no route", 1: "administratively prohibited", 3: "address unreachable",
                 4: "port unreachable", 5: "source address failed policy",
                 6: "reject route"}


def t(key: str, lang: str = "en", **values: Any) -> str:
    """The text ``key`` in ``lang`` (en, es, ca), with ``values`` filled in."""
    texts = TEXTS[key]
    text = texts[LANGS.index(lang) if lang in LANGS else 0]
    return text.format(**values) if values else text


def icmp_name(proto: int, itype: int, code: int) -> str:
    """``destination unreachable: port unreachable`` for ICMP(v6) type and code."""
    if proto == 1:
        name = ICMP4.get(itype, f"type {itype}")
        if itype == 3:
            return f"{name}: {ICMP4_UNREACH.get(code, f'code {code}')}"
        return name if itype in (0, 8) or code == 0 else f"{name} (code {code})"
    name = ICMP6.get(itype, f"type {itype}")
    if itype == 1:
        return f"{name}: {ICMP6_UNREACH.get(code, f'code {code}')}"
    return name


def tls_names(names: list[str]) -> str:
    """``Server Hello, Certificate`` from ``["ServerHello", "Certificate"]``."""
    return ", ".join(TLS_SPACED.get(n, n) for n in names)


FLAG_WORDS = ((2, "SYN"), (1, "FIN"), (4, "RST"), (8, "PSH"), (16, "ACK"), (32, "URG"),
              (64, "ECE"), (128, "CWR"))


def flag_words(flags: int) -> str:
    """``SYN, ACK`` (Wireshark's order)."""
    return ", ".join(word for bit, word in FLAG_WORDS if flags & bit)


def options_text(opts: dict[str, Any]) -> str:
    """TCP options as Wireshark's Info column shows them, in the order they were sent:
    ``MSS=1460 WS=256 SACK_PERM`` (WS is the multiplier, 2 to the shift)."""
    parts = []
    for key, value in opts.items():
        if key == "mss":
            parts.append(f"MSS={value}")
        elif key == "sack_perm":
            parts.append("SACK_PERM")
        elif key == "tsval":
            parts.append(f"TSval={value} TSecr={opts['tsecr']}")
        elif key == "wscale":
            parts.append(f"WS={1 << min(int(value), 14)}")
        elif key == "sack":
            parts.extend(f"SLE={left} SRE={right}" for left, right in value)
        elif key == "tfo":
            parts.append("TFO")
    return " ".join(parts)


def note(event: tuple, lang: str = "en") -> str:
    """The sentence for one recorded event (see ``Analyzer._record``)."""
    n, _t, c2s, flags, _seq, rel_ack, _win, seglen, _opts, tags, _abs = event
    side = t("client" if c2s else "server", lang)
    client, server = t("client", lang), t("server", lang)
    parts: list[str] = []
    analysis: list[str] = []
    app = False
    for tag in tags:
        code = tag[0]
        if code == "syn":
            parts.append(t("syn", lang, client=client, isn=tag[1]))
        elif code == "syn_retry":
            parts.append(t("syn_retry", lang, k=tag[1]))
        elif code == "synack":
            parts.append(t("synack", lang, server=server, isn=tag[1]))
        elif code == "synack_retry":
            parts.append(t("synack_retry", lang, k=tag[1]))
        elif code == "hs_ack":
            rtt = t("irtt", lang, ms=f"{tag[1] * 1000:.3f}") if tag[1] >= 0 else ""
            parts.append(t("hs_ack", lang, client=client, rtt=rtt))
        elif code == "ack":
            parts.append(t("ack", lang, side=side, n=max(0, rel_ack - 1)))
        elif code == "tls":
            names = tls_names(tag[1])
            extra = []
            if tag[2]:
                extra.append(t("sni", lang, sni=tag[2]))
            if tag[3]:
                extra.append(tag[3])
            parts.append(t("tls", lang, msgs=names) + (f" ({', '.join(extra)})"
                                                       if extra else ""))
            app = True
        elif code in ("http_req", "http_resp", "line"):
            parts.append(t(code, lang, line=tag[1]))
            app = True
        elif code == "fin_first":
            parts.append(t("fin_first", lang, side=side))
        elif code == "fin_second":
            parts.append(t("fin_simul" if tag[2] else "fin_second", lang, side=side))
        elif code in ("fin_again", "last_ack", "rst_again"):
            parts.append(t(code, lang))
        elif code == "fin_ack":
            parts.append(t("fin_ack", lang, side=side))
        elif code == "rst":
            kind = {"refused": "rst_refused", "after_fin": "rst_after_fin",
                    "abort": "rst_abort", "again": "rst_again"}[tag[2]]
            parts.append(t(kind, lang, side=side))
        elif code == "dupack":
            analysis.append(t("dupack", lang, k=tag[1]))
        elif code == "zerowin":
            analysis.append(t("zerowin", lang, side=side))
        elif code in ("retrans", "fast_retrans", "spurious", "ooo", "zwp", "keepalive",
                      "lost"):
            analysis.append(t(code, lang))
        elif code == "icmp":
            parts.append(t("icmp", lang, text=tag[1]))
    if seglen and not app and not any(p for p in parts):
        parts.append(t("data", lang, side=side, n=seglen))
    return " ".join(analysis + ["; ".join(parts)]).strip()


def event_json(event: tuple, lang: str = "en") -> dict[str, Any]:
    """One netcheck-pcap/1 event object."""
    n, ts, c2s, flags, seq, ack, win, seglen, opts, _tags, _abs = event
    from netcheck.pcap.sessions import flag_letters

    return {"n": n, "t": round(ts, 6),
            "dir": "icmp" if c2s is None else ("c>s" if c2s else "s>c"),
            "flags": flag_letters(flags), "seq": seq, "ack": ack, "win": win, "len": seglen,
            "options": options_text(opts), "note": note(event, lang)}


def session_story(s: dict[str, Any], lang: str = "en") -> list[str]:
    """Sentences that explain one netcheck-pcap/1 session object, in order."""
    lines: list[str] = []
    hs = s["handshake"]
    if hs["complete"]:
        rtt = t("story_rtt", lang, ms=f"{hs['rtt_ms']:.3f}") if hs["rtt_ms"] is not None \
            else ""
        lines.append(t("story_hs_ok", lang, rtt=rtt))
        if hs["syn_retries"]:
            lines.append(t("story_syn_retries", lang, k=hs["syn_retries"]))
    elif hs["answered_by_rst"]:
        lines.append(t("story_refused", lang))
    elif not hs.get("syn_seen", True):
        lines.append(t("story_midstream", lang))
    elif hs.get("synack_seen"):
        lines.append(t("story_no_ack", lang))
    else:
        lines.append(t("story_no_answer", lang, k=hs["syn_retries"] + 1))
    if s.get("icmp"):
        lines.append(t("story_icmp", lang, text=s["icmp"]))
    if s["bytes"]["client"] or s["bytes"]["server"]:
        lines.append(t("story_bytes", lang, c=s["bytes"]["client"], s=s["bytes"]["server"]))
    tls = s.get("tls")
    if tls:
        sni = t("story_sni", lang, sni=tls["sni"]) if tls.get("sni") else ""
        version = ", ".join(tls["versions"]) or t("no_version", lang)
        lines.append(t("story_tls", lang, version=version, sni=sni,
                       msgs=tls_names(tls["messages"])))
    if s.get("http"):
        items = []
        for h in s["http"]:
            req = h.get("request") or "?"
            items.append(f"{req} -> {h['status']}" if h.get("status") else req)
        lines.append(t("story_http", lang, items="; ".join(items)))
    if s.get("dialogue"):
        app = (s.get("app") or "").upper()
        shown = s["dialogue"][:8]
        more = " ..." if len(s["dialogue"]) > 8 else ""
        lines.append(t("story_dialogue", lang, app=app, lines=" | ".join(shown) + more))
        if any("credentials in clear text" in line for line in s["dialogue"]):
            lines.append(t("story_secret", lang))
    detail = s.get("close_detail") or s["close"]
    who = t(s["closed_by"], lang) if s.get("closed_by") else "?"
    key = f"close_{detail}"
    if key in TEXTS and TEXTS[key][0]:
        lines.append(t(key, lang, who=who))
    problems = []
    for field, code in (("retransmissions", "p_retrans"), ("dup_acks", "p_dupacks"),
                        ("zero_windows", "p_zero"), ("out_of_order", "p_ooo")):
        if s.get(field):
            problems.append(t(code, lang, n=s[field]))
    if problems:
        lines.append(t("story_problems", lang, items=", ".join(problems)))
    return lines


def handshake_cell(s: dict[str, Any], lang: str = "en") -> str:
    """A few words for the summary table's handshake column."""
    hs = s["handshake"]
    words = {"en": ("ok", "refused (RST)", "no answer", "not captured", "no final ACK"),
             "es": ("ok", "rechazado (RST)", "sin respuesta", "no capturado", "sin ACK final"),
             "ca": ("ok", "rebutjat (RST)", "sense resposta", "no capturat",
                    "sense ACK final")}[lang if lang in LANGS else "en"]
    retries = f" +{hs['syn_retries']} SYN" if hs["syn_retries"] else ""
    if hs["complete"]:
        return words[0] + retries
    if hs["answered_by_rst"]:
        return words[1]
    if not hs.get("syn_seen", True):
        return words[3]
    if hs.get("synack_seen"):
        return words[4]
    return f"{words[2]} (SYN x{hs['syn_retries'] + 1})"


def close_cell(s: dict[str, Any], lang: str = "en") -> str:
    """A few words for the summary table's close column."""
    who: Optional[str] = s.get("closed_by")
    detail = s.get("close_detail") or s["close"]
    if detail == "refused":
        return "RST"
    if detail == "none":
        return "-"
    label = {"four-way": "FIN", "three-way": "FIN", "simultaneous": "FIN simult.",
             "half": "half FIN", "rst": "RST", "rst-after-fin": "FIN+RST"}.get(detail, detail)
    return f"{label} ({t(who, lang)})" if who else label
