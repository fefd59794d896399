"""Text output of a netcheck-pcap/1 document: the tables the students draw by hand.

First the summary of every TCP session (one row each), then DNS exchanges and the other
traffic, then, for each session whose events are in the document, its story and its
timeline: number, relative time, direction, flags, relative seq/ack, window, length, TCP
options and the note, like the seeds' Wireshark tables.

Tables are laid out here as plain text (fast for thousands of rows, and testable with a
plain string); rich is imported only to colour them on a terminal.
"""

from __future__ import annotations

from typing import IO, Any, Optional, Sequence

from netcheck.pcap.explain import TEXTS, close_cell, flag_words, handshake_cell, session_story, t
from netcheck.redact import printable

TEXTS.update({
    "h_sessions": ("TCP sessions", "Sesiones TCP", "Sessions TCP"),
    "h_dns": ("DNS", "DNS", "DNS"),
    "h_other": ("Other traffic", "Otro tráfico", "Altre trànsit"),
    "h_session": ("Session {id}: {client} -> {server}", "Sesión {id}: {client} -> {server}",
                  "Sessió {id}: {client} -> {server}"),
    "packets_line": ("{file}: {packets} packets, {sessions} TCP session(s), {dns} DNS "
                     "exchange(s)",
                     "{file}: {packets} paquetes, {sessions} sesión(es) TCP, {dns} "
                     "intercambio(s) DNS",
                     "{file}: {packets} paquets, {sessions} sessió/ons TCP, {dns} "
                     "intercanvi(s) DNS"),
    "more_rows": ("... {n} more session(s) not shown: -v shows them all, --session N one in "
                  "detail",
                  "... {n} sesión(es) más sin mostrar: -v las muestra todas, --session N una "
                  "en detalle",
                  "... {n} sessió/ons més sense mostrar: -v les mostra totes, --session N una "
                  "en detall"),
    "beyond": ("... and {n} more session(s) beyond the first {cap}, counted together: {pkts} "
               "packets, {retr} retransmission(s), {inc} without a complete handshake",
               "... y {n} sesión(es) más allá de las primeras {cap}, contadas juntas: {pkts} "
               "paquetes, {retr} retransmisión(es), {inc} sin negociación completa",
               "... i {n} sessió/ons més enllà de les primeres {cap}, comptades juntes: {pkts} "
               "paquets, {retr} retransmissió/ons, {inc} sense negociació completa"),
    "hint_session": ("Detail of one session: --session N", "Detalle de una sesión: --session N",
                     "Detall d'una sessió: --session N"),
    "events_omitted": ("... {n} more packet(s) of this session not shown",
                       "... {n} paquete(s) más de esta sesión sin mostrar",
                       "... {n} paquet(s) més d'aquesta sessió sense mostrar"),
    "warning": ("warning: {text}", "aviso: {text}", "avís: {text}"),
    "not_decoded": ("not decoded: {items} (what is inside is not in this report)",
                    "no decodificado: {items} (lo que llevan dentro no está en este informe)",
                    "no descodificat: {items} (el que porten a dins no és en aquest informe)"),
    "note": ("note: {text}", "nota: {text}", "nota: {text}"),
    "one_way": ("{n} of {m} TCP session(s) were captured in one direction only (asymmetric "
                "routing, a capture point that sees one way, or a capture filter): what the "
                "other side sent is not in this capture, though the ACKs of the side seen prove "
                "it was sent",
                "{n} de {m} sesión(es) TCP se capturaron en un solo sentido (encaminamiento "
                "asimétrico, un punto de captura que ve un solo sentido o un filtro de captura): "
                "lo que envió el otro lado no está en la captura, aunque los ACK del lado visto "
                "prueban que se envió",
                "{n} de {m} sessió/ons TCP s'han capturat en un sol sentit (encaminament "
                "asimètric, un punt de captura que veu un sol sentit o un filtre de captura): el "
                "que ha enviat l'altre costat no és a la captura, tot i que els ACK del costat "
                "vist proven que s'ha enviat"),
    "copies": ("{n} frame(s) are the packet just before them captured again (same IP ID and "
               "bytes: a capture on two interfaces or a mirror port): counted as "
               "retransmissions or duplicate ACKs as Wireshark does, explained as copies",
               "{n} trama(s) son el paquete justo anterior capturado de nuevo (mismo IP ID y "
               "bytes: una captura en dos interfaces o un puerto espejo): se cuentan como "
               "retransmisiones o ACK duplicados, como en Wireshark, y se explican como copias",
               "{n} trama/es són el paquet just anterior capturat de nou (mateix IP ID i bytes: "
               "una captura en dues interfícies o un port mirall): es compten com a "
               "retransmissions o ACK duplicats, com a Wireshark, i s'expliquen com a còpies"),
    "nd_packets": ("{what}, {n} packet(s)", "{what}, {n} paquete(s)", "{what}, {n} paquet(s)"),
    "nd_malformed": ("malformed {what}", "{what} malformado", "{what} mal format"),
    "not_followed": ("{n} sessions not followed: table full (more sessions open at once than "
                     "netcheck follows; the oldest half-open ones were dropped first)",
                     "{n} sesiones no seguidas: tabla llena (más sesiones abiertas a la vez de "
                     "las que netcheck sigue; primero se descartaron las semiabiertas más "
                     "antiguas)",
                     "{n} sessions no seguides: taula plena (més sessions obertes alhora de les "
                     "que netcheck segueix; primer s'han descartat les semiobertes més "
                     "antigues)"),
    "trace_line": ("trace {target} -> {where} from port {port} (captured with {via}): "
                   "{outcome}{extra}",
                   "traza {target} -> {where} desde el puerto {port} (capturada con {via}): "
                   "{outcome}{extra}",
                   "traça {target} -> {where} des del port {port} (capturada amb {via}): "
                   "{outcome}{extra}"),
})

MAX_ROWS = 200


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns separated by two spaces; the last column is never padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _app_cell(s: dict[str, Any]) -> str:
    tls = s.get("tls")
    if tls:
        parts = ["/".join(tls["versions"]) or "TLS"]
        if tls.get("sni"):
            parts.append(tls["sni"])
        return " ".join(parts)
    if s.get("http"):
        first = s["http"][0]
        req = (first.get("request") or "").rsplit(" ", 1)[0]
        more = f" (+{len(s['http']) - 1})" if len(s["http"]) > 1 else ""
        return f"{req} -> {first.get('status') or '?'}{more}".strip()
    if s.get("dialogue"):
        return f"{(s.get('app') or '').upper()} {s['dialogue'][0][3:40]}"
    return (s.get("app") or "").upper()


def session_rows(sessions: Sequence[dict[str, Any]], lang: str) -> list[list[str]]:
    """One summary row per session."""
    rows = []
    for s in sessions:
        rtt = s["handshake"]["rtt_ms"]
        rows.append([str(s["id"]), s["client"], s["server"], str(s["packets"]),
                     str(s["bytes"]["client"]), str(s["bytes"]["server"]),
                     handshake_cell(s, lang), f"{rtt:.3f}" if rtt is not None else "-",
                     close_cell(s, lang), str(s["retransmissions"]), _app_cell(s)])
    return rows


SESSION_HEADERS = ("#", "client", "server", "pkts", "c>s bytes", "s>c bytes", "handshake",
                   "iRTT ms", "close", "retr", "application")
EVENT_HEADERS = ("No.", "Time", "Dir", "Flags", "Seq", "Ack", "Win", "Len", "Options", "Note")


def event_rows(events: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One timeline row per event."""
    from netcheck.pcap.sessions import FLAG_LETTERS

    rows = []
    for e in events:
        bits = sum(bit for bit, letter in FLAG_LETTERS if letter in e["flags"])
        rows.append([str(e["n"]), f"{e['t']:.6f}", e["dir"], flag_words(bits) or "-",
                     str(e["seq"]), str(e["ack"]), str(e["win"]), str(e["len"]),
                     e.get("options") or "", e.get("note") or ""])
    return rows


Lines = list[tuple[str, Optional[str]]]  # (line, style for rich: None = plain)


def render_lines(doc: dict[str, Any], lang: str = "en", verbose: bool = False
                 ) -> list[tuple[str, Optional[str]]]:
    """The whole text output as ``(line, style)`` pairs (style for rich, None = plain)."""
    sessions = doc.get("sessions", [])
    out = _heading_lines(doc, sessions, lang)
    out.extend(_session_table_lines(doc, sessions, lang, verbose))
    dns = doc.get("dns", [])
    if dns:
        out.append(("", None))
        out.append((t("h_dns", lang), "bold"))
        rows = [[f"{d['t']:.6f}", f"0x{d['id']:04x}", d.get("query") or "?",
                 d.get("type") or "?", d.get("rcode") or "(no answer)",
                 f"{d['rtt_ms']:.3f}" if d.get("rtt_ms") is not None else "-",
                 ", ".join(d.get("answers", []))]
                for d in (dns if verbose else dns[:MAX_ROWS])]
        for line in table(("Time", "ID", "query", "type", "rcode", "ms", "answers"), rows):
            out.append((line, None))
    other = doc.get("other", [])
    if other:
        out.append(("", None))
        out.append((t("h_other", lang), "bold"))
        for item in other[:MAX_ROWS] if not verbose else other:
            out.append(("  " + _other_text(item), None))
    out.extend(_detail_lines(sessions, lang))
    # Names, request lines, banners and file names come from the capture (or whoever made
    # it): no control character reaches the terminal raw, whatever field it came in.
    return [(printable(line), style) for line, style in out]


def _heading_lines(doc: dict[str, Any], sessions: list[dict[str, Any]], lang: str) -> Lines:
    """What the capture holds in one line, the trace's outcome, then the warnings and notes
    about the capture as a whole."""
    out: Lines = []
    total = doc.get("sessions_total", len(sessions))
    name = doc.get("file") or doc.get("trace", {}).get("target") or "capture"
    out.append((t("packets_line", lang, file=name, packets=doc.get("packets", 0),
                  sessions=total, dns=len(doc.get("dns", []))), "bold"))
    trace = doc.get("trace")
    if trace:
        out.append((_trace_line(trace, lang), "bold" if trace.get("outcome") == "ok" else "red"))
    for warning in doc.get("warnings", []):
        out.append((t("warning", lang, text=warning), "yellow"))
    facts = doc.get("capture") or {}
    if facts.get("one_way_sessions"):
        out.append((t("note", lang, text=t("one_way", lang, n=facts["one_way_sessions"],
                                             m=facts["sessions"])), "yellow"))
    if facts.get("frames_captured_again"):
        out.append((t("note", lang, text=t("copies", lang, n=facts["frames_captured_again"])),
                    "yellow"))
    not_decoded = doc.get("not_decoded") or []
    if not_decoded:
        items = "; ".join(
            t("nd_packets", lang, n=d["packets"],
              what=d["what"] if d["kind"] == "tunnel" else t("nd_malformed", lang, what=d["what"]))
            for d in not_decoded)
        out.append((t("not_decoded", lang, items=items), "yellow"))
    if doc.get("sessions_not_followed"):
        out.append((t("warning", lang, text=t("not_followed", lang,
                                               n=doc["sessions_not_followed"])), "yellow"))
    return out


def _session_table_lines(doc: dict[str, Any], sessions: list[dict[str, Any]], lang: str,
                         verbose: bool) -> Lines:
    """The summary table of the TCP sessions, and the ones beyond the cap counted together."""
    out: Lines = []
    if sessions:
        out.append(("", None))
        out.append((t("h_sessions", lang), "bold"))
        shown = sessions if verbose else sessions[:MAX_ROWS]
        for line in table(SESSION_HEADERS, session_rows(shown, lang)):
            out.append((line, None))
        if len(shown) < len(sessions):
            out.append((t("more_rows", lang, n=len(sessions) - len(shown)), "dim"))
    beyond = doc.get("sessions_beyond_cap")
    if beyond:
        out.append((t("beyond", lang, n=beyond["sessions"], cap=len(sessions),
                      pkts=beyond["packets"], retr=beyond["retransmissions"],
                      inc=beyond["handshake_incomplete"]), "dim"))
    return out


def _detail_lines(sessions: list[dict[str, Any]], lang: str) -> Lines:
    """The story and timeline of each session whose events are in the document (else, with
    several sessions, how to ask for one)."""
    out: Lines = []
    detailed = [s for s in sessions if "events" in s]
    for s in detailed:
        out.append(("", None))
        out.append((t("h_session", lang, id=s["id"], client=s["client"], server=s["server"]),
                    "bold"))
        for sentence in session_story(s, lang):
            out.append(("  " + sentence, None))
        out.append(("", None))
        for line in table(EVENT_HEADERS, event_rows(s["events"])):
            out.append((line, _style_for(line)))
        if s.get("events_omitted"):
            out.append((t("events_omitted", lang, n=s["events_omitted"]), "dim"))
    if not detailed and len(sessions) > 1:
        out.append(("", None))
        out.append((t("hint_session", lang), "dim"))
    return out


def _trace_line(trace: dict[str, Any], lang: str) -> str:
    """What the traced connection did, in one line."""
    host = trace["address"]
    where = f"[{host}]:{trace['port']}" if ":" in host else f"{host}:{trace['port']}"
    extra = []
    if trace.get("http_status") is not None:
        extra.append(f"HTTP {trace['http_status']}")
    if trace.get("tls_version"):
        extra.append(trace["tls_version"])
    if trace.get("banner"):
        extra.append(repr(trace["banner"]))
    if trace.get("detail"):
        extra.append(trace["detail"])
    via = f"{trace['capture']}" + (f", {trace['interface']}" if trace.get("interface") else "")
    return t("trace_line", lang, target=trace["target"], where=where, port=trace["local_port"],
             via=via, outcome=trace.get("outcome"),
             extra=(": " + "; ".join(extra)) if extra else "")


def _style_for(line: str) -> Optional[str]:
    if "RST" in line:
        return "red"
    if "[retrans" in line or "[dup" in line or "[fast" in line or "[ACK dup" in line:
        return "yellow"
    return None


def _other_text(item: dict[str, Any]) -> str:
    proto = item["proto"]
    if proto == "udp":
        if item.get("client") is None:
            return f"udp: {item['packets']} packets ({item.get('note', '')})"
        return (f"udp {item['client']} -> {item['server']}: {item['packets']} packets, "
                f"{item['bytes']} bytes")
    if proto == "isakmp":
        return (f"isakmp ({'/'.join(item.get('versions', []))}): {item['packets']} packets, "
                f"{', '.join(item.get('exchanges', []))}; SPIs "
                f"{', '.join(item.get('spis', []))}")
    if proto in ("esp", "ah"):
        return f"{proto}: {item['packets']} packets, SPIs {', '.join(item['spis'])}"
    if proto == "icmp":
        messages = ", ".join(f"{k} x{v}" for k, v in item["messages"].items())
        return f"icmp: {item['packets']} packets ({messages})"
    return f"{proto}: {item['packets']} packets"


def render_text(doc: dict[str, Any], out: IO[str], lang: str = "en", verbose: bool = False,
                color: bool = False) -> None:
    """Write the text output; with ``color`` (a terminal), through rich."""
    lines = render_lines(doc, lang, verbose)
    if not color:
        out.write("\n".join(line for line, _ in lines) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=True)
    for line, style in lines:
        console.print(Text(line, style=style or ""))
