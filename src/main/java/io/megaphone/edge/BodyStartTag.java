// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import com.fasterxml.aalto.AsyncByteArrayFeeder;
import com.fasterxml.aalto.AsyncXMLInputFactory;
import com.fasterxml.aalto.AsyncXMLStreamReader;
import com.fasterxml.aalto.stax.InputFactoryImpl;
import java.nio.charset.StandardCharsets;
import javax.xml.stream.XMLInputFactory;
import javax.xml.stream.XMLStreamConstants;
import javax.xml.stream.XMLStreamException;

/**
 * The attributes of a BOSH request's root {@code <body/>} that the ECM needs, read with Aalto's non-blocking
 * parser up to the end of the start tag only: the rest of the body is ejabberd's to parse.
 *
 * @param sid the session id, or "" on a session-creation request
 * @param rid the request id, or 0 when absent
 */
record BodyStartTag(String sid, long rid) {

    static final String HTTPBIND_NS = "http://jabber.org/protocol/httpbind";
    private static final long MAX_RID = (1L << 53) - 1;
    /** The longest sid a REQUEST frame carries (docs/protocol.md); ejabberd's own are 40 hex digits. */
    static final int MAX_SID_BYTES = 255;

    private static final AsyncXMLInputFactory FACTORY = newFactory();

    private static AsyncXMLInputFactory newFactory() {
        AsyncXMLInputFactory factory = new InputFactoryImpl();
        // No DTDs, no entity expansion: a BOSH body never needs them, and they are how XML bombs work.
        factory.setProperty(XMLInputFactory.SUPPORT_DTD, false);
        factory.setProperty(XMLInputFactory.IS_SUPPORTING_EXTERNAL_ENTITIES, false);
        factory.setProperty(XMLInputFactory.IS_COALESCING, false);
        return factory;
    }

    /**
     * Reads the start tag of {@code body}.
     *
     * @throws BadRequestException if the root is not {@code <body/>} in the httpbind namespace, the XML is
     *     broken before the end of the start tag, or {@code rid} is not a number in XEP-0124's range
     */
    static BodyStartTag parse(byte[] body) {
        AsyncXMLStreamReader<AsyncByteArrayFeeder> reader = FACTORY.createAsyncForByteArray();
        try {
            reader.getInputFeeder().feedInput(body, 0, body.length);
            reader.getInputFeeder().endOfInput();
            int event;
            do {
                event = reader.next();
                if (event == XMLStreamConstants.DTD) {
                    throw new BadRequestException("a DOCTYPE is not allowed");
                }
                if (event == AsyncXMLStreamReader.EVENT_INCOMPLETE || event == XMLStreamConstants.END_DOCUMENT) {
                    throw new BadRequestException("no root element");
                }
            } while (event != XMLStreamConstants.START_ELEMENT);
            if (!"body".equals(reader.getLocalName()) || !HTTPBIND_NS.equals(reader.getNamespaceURI())) {
                throw new BadRequestException("root: {" + reader.getNamespaceURI() + "}" + reader.getLocalName()
                        + " (expected: {" + HTTPBIND_NS + "}body)");
            }
            String sid = reader.getAttributeValue(null, "sid");
            if (sid != null && sid.getBytes(StandardCharsets.UTF_8).length > MAX_SID_BYTES) {
                throw new BadRequestException("sid: " + sid.length() + " characters (expected: at most "
                        + MAX_SID_BYTES + " UTF-8 bytes, what a REQUEST frame carries)");
            }
            return new BodyStartTag(sid == null ? "" : sid, rid(reader.getAttributeValue(null, "rid")));
        } catch (XMLStreamException e) {
            throw new BadRequestException("malformed XML: " + e.getMessage().lines().findFirst().orElse(""));
        } finally {
            try {
                reader.close();
            } catch (XMLStreamException ignored) {
                // nothing was allocated that close() would free
            }
        }
    }

    private static long rid(String value) {
        if (value == null) {
            return 0;
        }
        try {
            long rid = Long.parseLong(value.strip());
            if (rid < 1 || rid > MAX_RID) {
                throw new BadRequestException("rid: " + value + " (expected: 1 to 2^53-1)");
            }
            return rid;
        } catch (NumberFormatException e) {
            throw new BadRequestException("rid: " + value + " (expected: a positive integer)");
        }
    }
}
