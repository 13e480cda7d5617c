// SPDX-License-Identifier: Apache-2.0
// A browser's XMLHttpRequest for Strophe.js in Node: xhr2, with responseXML parsed as a browser parses a text/xml
// answer (xhr2 does not, and Strophe.js 5.0.0 needs it: its fallback that parses responseText drops the parsed
// document and stalls the login).
import { DOMParser } from '@xmldom/xmldom';
import XHR from 'xhr2';

export class NodeXHR extends XHR {
    get responseXML() {
        if (this.readyState !== 4 || !this.responseText) return null;
        try {
            return new DOMParser().parseFromString(this.responseText, 'text/xml');
        } catch {
            return null;
        }
    }
}

export { XHR };
