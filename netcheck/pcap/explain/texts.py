"""The words, by code, in en/es/ca (:data:`TEXTS`), and :func:`t`: a code's text in a language
with its values filled in.
"""

from __future__ import annotations

from typing import Any

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
    "syn_retry": ("SYN sent again (attempt {k}): no answer is in the capture before it",
                  "SYN reenviado (intento {k}): no hay respuesta en la captura antes de él",
                  "SYN reenviat (intent {k}): no hi ha cap resposta a la captura abans d'ell"),
    "synack": ("SYN-ACK: {server} accepts, acknowledges A+1, its own ISN B = {isn}",
               "SYN-ACK: el {server} acepta, confirma A+1 y elige su ISN B = {isn}",
               "SYN-ACK: el {server} accepta, confirma A+1 i tria el seu ISN B = {isn}"),
    "synack_retry": ("SYN-ACK sent again (attempt {k}): no ACK from the client is in the "
                     "capture before it",
                     "SYN-ACK reenviado (intento {k}): no hay ACK del cliente en la captura "
                     "antes de él",
                     "SYN-ACK reenviat (intent {k}): no hi ha cap ACK del client a la captura "
                     "abans d'ell"),
    "synack_new": ("SYN-ACK with a new initial sequence number B = {isn}: the {server} started "
                   "the handshake afresh (numbers now count from it, as in Wireshark)",
                   "SYN-ACK con un nuevo número de secuencia inicial B = {isn}: el {server} "
                   "empezó la negociación de nuevo (los números cuentan desde él, como en "
                   "Wireshark)",
                   "SYN-ACK amb un nou número de seqüència inicial B = {isn}: el {server} ha "
                   "començat la negociació de nou (els números compten des d'ell, com a "
                   "Wireshark)"),
    "hs_ack": ("ACK: {client} acknowledges B+1; handshake complete{rtt}",
               "ACK: el {client} confirma B+1; negociación en tres pasos completa{rtt}",
               "ACK: el {client} confirma B+1; negociació en tres passos completa{rtt}"),
    "hs_ack_nosyn": ("ACK: {client} acknowledges B+1 (its SYN is not in the capture)",
                     "ACK: el {client} confirma B+1 (su SYN no está en la captura)",
                     "ACK: el {client} confirma B+1 (el seu SYN no és a la captura)"),
    "hs_ack_unseen": ("ACK: {client} acknowledges B+1: the server's SYN-ACK reached it, though "
                      "it is not in the capture{rtt}",
                      "ACK: el {client} confirma B+1: el SYN-ACK del servidor le llegó, aunque "
                      "no está en la captura{rtt}",
                      "ACK: el {client} confirma B+1: el SYN-ACK del servidor li ha arribat, "
                      "tot i que no és a la captura{rtt}"),
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
    "http_resp_unseen": ("HTTP response whose start is not in the capture (it was in the "
                         "missing segments)",
                         "Respuesta HTTP cuyo inicio no está en la captura (estaba en los "
                         "segmentos que faltan)",
                         "Resposta HTTP l'inici de la qual no és a la captura (era als segments "
                         "que falten)"),
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
    "retrans": ("[retransmission: these bytes were sent before and not acknowledged in time]",
                "[retransmisión: estos bytes ya se enviaron y no se confirmaron a tiempo]",
                "[retransmissió: aquests bytes ja s'havien enviat i no s'han confirmat a "
                "temps]"),
    "dup": ("[captured again: the same packet as the frame before ({same}), not sent again]",
            "[capturado de nuevo: el mismo paquete que la trama anterior ({same}), no se "
            "envió otra vez]",
            "[capturat de nou: el mateix paquet que la trama anterior ({same}), no s'ha "
            "tornat a enviar]"),
    "dup_same_id": ("same IP ID {id} and bytes", "mismo IP ID {id} y bytes",
                    "mateix IP ID {id} i bytes"),
    "dup_same": ("same bytes", "mismos bytes", "mateixos bytes"),
    "cut": ("[cut by the snap length: {c} of {n} TCP bytes captured; the rest (options, data) "
            "is unknown]",
            "[cortado por la longitud de captura: {c} de {n} bytes TCP capturados; el resto "
            "(opciones, datos) es desconocido]",
            "[tallat per la longitud de captura: {c} de {n} bytes TCP capturats; la resta "
            "(opcions, dades) és desconeguda]"),
    "ack_unseen": ("[acknowledges bytes that are not in the capture]",
                   "[confirma bytes que no están en la captura]",
                   "[confirma bytes que no són a la captura]"),
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
    "dupack_plain": ("[duplicate ACK #{k}: the same acknowledgement again]",
                     "[ACK duplicado #{k}: la misma confirmación otra vez]",
                     "[ACK duplicat #{k}: la mateixa confirmació un altre cop]"),
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
    "story_no_answer": ("The SYN was sent {k} time(s) and no answer is in the capture.",
                        "El SYN se envió {k} vez/veces y no hay respuesta en la captura.",
                        "El SYN s'ha enviat {k} vegada/es i no hi ha cap resposta a la "
                        "captura."),
    "story_dropped": ("Other packets to {client} were captured, so an answer would have been "
                      "seen here: the SYN or its answer is dropped on the way (a firewall that "
                      "drops silently), or {server} is down.",
                      "Se capturaron otros paquetes hacia {client}, así que aquí se habría "
                      "visto una respuesta: el SYN o su respuesta se descartan por el camino "
                      "(un cortafuegos que descarta en silencio), o {server} está caído.",
                      "S'han capturat altres paquets cap a {client}, així que aquí s'hauria "
                      "vist una resposta: el SYN o la seva resposta es descarten pel camí (un "
                      "tallafocs que descarta en silenci), o {server} no funciona."),
    "story_not_retried": ("Other packets to {client} were captured, so an answer would have "
                          "been seen here; the client did not send the SYN again.",
                          "Se capturaron otros paquetes hacia {client}, así que aquí se habría "
                          "visto una respuesta; el cliente no volvió a enviar el SYN.",
                          "S'han capturat altres paquets cap a {client}, així que aquí s'hauria "
                          "vist una resposta; el client no ha tornat a enviar el SYN."),
    "story_too_soon": ("The capture ends {s} s after the last SYN: too soon to tell whether an "
                       "answer would have come.",
                       "La captura acaba {s} s después del último SYN: demasiado pronto para "
                       "saber si habría llegado una respuesta.",
                       "La captura acaba {s} s després de l'últim SYN: massa aviat per saber si "
                       "hauria arribat una resposta."),
    "story_one_way_unknown": ("Nothing at all to {client} is in this capture (only what it "
                              "sent was captured): whether the server answered cannot be told "
                              "from it.",
                              "En esta captura no hay nada dirigido a {client} (solo se capturó "
                              "lo que envió): no se puede saber con ella si el servidor "
                              "respondió.",
                              "En aquesta captura no hi ha res adreçat a {client} (només s'ha "
                              "capturat el que ha enviat): no es pot saber amb ella si el "
                              "servidor ha respost."),
    "story_client_only": ("Only the client's packets are in this capture: the server's answers "
                          "went another way or were not captured.",
                          "En esta captura solo están los paquetes del cliente: las respuestas "
                          "del servidor fueron por otro camino o no se capturaron.",
                          "En aquesta captura només hi ha els paquets del client: les respostes "
                          "del servidor han anat per un altre camí o no s'han capturat."),
    "story_client_acked": ("The client's ACKs show the server did answer: its SYN-ACK reached "
                           "the client{data}.",
                           "Los ACK del cliente muestran que el servidor sí respondió: su "
                           "SYN-ACK llegó al cliente{data}.",
                           "Els ACK del client mostren que el servidor sí que ha respost: el seu "
                           "SYN-ACK ha arribat al client{data}."),
    "story_acked_data": (", and so did {n} bytes of its data", ", y también {n} bytes de datos",
                         ", i també {n} bytes de dades"),
    "story_peer_acked": ("The {side}'s ACKs show it received {n} bytes from the {peer}.",
                         "Los ACK del {side} muestran que recibió {n} bytes del {peer}.",
                         "Els ACK del {side} mostren que ha rebut {n} bytes del {peer}."),
    "story_server_only": ("Only the server's packets are in this capture: the client's went "
                          "another way or were not captured.",
                          "En esta captura solo están los paquetes del servidor: los del "
                          "cliente fueron por otro camino o no se capturaron.",
                          "En aquesta captura només hi ha els paquets del servidor: els del "
                          "client han anat per un altre camí o no s'han capturat."),
    "story_no_syn": ("The client's SYN is not in the capture (the capture began after it, or it "
                     "went another way), but the server's SYN-ACK and the client's ACK are: "
                     "the connection was set up.",
                     "El SYN del cliente no está en la captura (empezó después, o fue por otro "
                     "camino), pero el SYN-ACK del servidor y el ACK del cliente sí: la conexión "
                     "se estableció.",
                     "El SYN del client no és a la captura (ha començat després, o ha anat per "
                     "un altre camí), però el SYN-ACK del servidor i l'ACK del client sí: la "
                     "connexió s'ha establert."),
    "story_new_isn": ("The server sent its SYN-ACK {n} more time(s) with a new initial "
                      "sequence number, starting the handshake afresh; sequence numbers and "
                      "bytes count from the last one, as Wireshark does.",
                      "El servidor envió su SYN-ACK {n} vez/veces más con un nuevo número de "
                      "secuencia inicial, empezando la negociación de nuevo; los números y "
                      "los bytes cuentan desde el último, como en Wireshark.",
                      "El servidor ha enviat el seu SYN-ACK {n} vegada/es més amb un nou número "
                      "de seqüència inicial, començant la negociació de nou; els números i els "
                      "bytes compten des de l'últim, com a Wireshark."),
    "story_dups": ("{n} frame(s) of this session are the packet just before them captured "
                   "again (same IP ID and bytes, microseconds apart: a capture on two "
                   "interfaces, or a mirror port): copies, not retransmissions; the counts "
                   "below include them as Wireshark does.",
                   "{n} trama(s) de esta sesión son el paquete justo anterior capturado de "
                   "nuevo (mismo IP ID y bytes, a microsegundos: una captura en dos interfaces "
                   "o un puerto espejo): copias, no retransmisiones; los recuentos las "
                   "incluyen, como Wireshark.",
                   "{n} trama/es d'aquesta sessió són el paquet just anterior capturat de nou "
                   "(mateix IP ID i bytes, a microsegons: una captura en dues interfícies o un "
                   "port mirall): còpies, no retransmissions; els recomptes les inclouen, com "
                   "Wireshark."),
    "story_cut": ("{n} packet(s) were cut by the snap length: options and data beyond the "
                  "captured bytes are unknown, not absent.",
                  "{n} paquete(s) se cortaron por la longitud de captura: las opciones y los "
                  "datos más allá de lo capturado son desconocidos, no ausentes.",
                  "{n} paquet(s) s'han tallat per la longitud de captura: les opcions i les "
                  "dades més enllà del que s'ha capturat són desconegudes, no absents."),
    "story_gaps": ("The capture misses part of this session: {g} time(s) earlier segments are "
                   "not in it{acked}; what is missing was not necessarily lost on the network.",
                   "A la captura le falta parte de esta sesión: {g} vez/veces faltan "
                   "segmentos anteriores{acked}; lo que falta no se perdió necesariamente en la "
                   "red.",
                   "A la captura li falta part d'aquesta sessió: {g} vegada/es hi falten "
                   "segments anteriors{acked}; el que falta no s'ha perdut necessàriament a la "
                   "xarxa."),
    "story_gaps_acked": (", and the ACKs acknowledge {n} bytes it does not hold",
                         ", y los ACK confirman {n} bytes que no contiene",
                         ", i els ACK confirmen {n} bytes que no conté"),
    "story_dialogue_cut": ("The dialogue listing stops after {m} lines: {n} more were counted, "
                           "not kept.",
                           "La lista del diálogo se detiene tras {m} líneas: {n} más se "
                           "contaron, no se guardaron.",
                           "La llista del diàleg s'atura després de {m} línies: {n} més s'han "
                           "comptat, no guardat."),
    "story_http_cut": ("HTTP listing stops after {m} exchanges: {r} more request(s) and {a} "
                       "more response(s) were counted, not kept.",
                       "La lista HTTP se detiene tras {m} intercambios: {r} petición(es) y {a} "
                       "respuesta(s) más se contaron, no se guardaron.",
                       "La llista HTTP s'atura després de {m} intercanvis: {r} petició/ons i {a} "
                       "resposta/es més s'han comptat, no guardat."),
    "answer_not_captured": ("answer not captured", "respuesta no capturada",
                            "resposta no capturada"),
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
    "story_bytes_client": ("Data: the client sent {c} bytes (what the server sent is not in the "
                           "capture).",
                           "Datos: el cliente envió {c} bytes (lo que envió el servidor no está "
                           "en la captura).",
                           "Dades: el client ha enviat {c} bytes (el que ha enviat el servidor "
                           "no és a la captura)."),
    "story_bytes_server": ("Data: the server sent {s} bytes (what the client sent is not in the "
                           "capture).",
                           "Datos: el servidor envió {s} bytes (lo que envió el cliente no está "
                           "en la captura).",
                           "Dades: el servidor ha enviat {s} bytes (el que ha enviat el client "
                           "no és a la captura)."),
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
    "close_one_way_fin": ("Close: the {who} sent FIN; whether the other side closed too is not in "
                          "the capture.",
                          "Cierre: el {who} envió FIN; si el otro lado también cerró no está en "
                          "la captura.",
                          "Tancament: el {who} ha enviat FIN; si l'altre costat també ha tancat "
                          "no és a la captura."),
    "close_one_way": ("No FIN or RST from the {side} is in the capture; the other side's are "
                      "not in it at all.",
                      "No hay FIN ni RST del {side} en la captura; los del otro lado no están "
                      "en ella.",
                      "No hi ha FIN ni RST del {side} a la captura; els de l'altre costat no hi "
                      "són."),
    "close_none": ("Still open at the end of the capture (no FIN or RST seen).",
                   "Sigue abierta al final de la captura (no se ve FIN ni RST).",
                   "Continua oberta al final de la captura (no es veu FIN ni RST)."),
    "story_problems": ("Trouble: {items}.", "Problemas: {items}.", "Problemes: {items}."),
    "p_retrans": ("{n} retransmission(s)", "{n} retransmisión(es)", "{n} retransmissió(ns)"),
    "p_dupacks": ("{n} duplicate ACK(s)", "{n} ACK duplicado(s)", "{n} ACK duplicat(s)"),
    "p_zero": ("{n} zero window(s)", "{n} ventana(s) cero", "{n} finestra/es zero"),
    "p_ooo": ("{n} out-of-order segment(s)", "{n} segmento(s) fuera de orden",
              "{n} segment(s) fora d'ordre"),
    "p_of_dups": (" ({n} of them copies of a frame captured again)",
                  " ({n} de ellas, copias de una trama capturada de nuevo)",
                  " ({n} d'elles, còpies d'una trama capturada de nou)"),
}


def t(key: str, lang: str = "en", **values: Any) -> str:
    """The text ``key`` in ``lang`` (en, es, ca), with ``values`` filled in."""
    texts = TEXTS[key]
    text = texts[LANGS.index(lang) if lang in LANGS else 0]
    return text.format(**values) if values else text
