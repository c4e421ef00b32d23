"""Section narrative: the CDA narrative block (CDA R2 section 4.3.5) as
FHIR XHTML (FHIR R4 section 2.4 Narrative), by one XSLT compiled once.

Each CDA narrative element becomes its XHTML counterpart (``paragraph`` →
``p``, ``content`` → ``span``, ``list`` → ``ul``/``ol`` with its caption as
a bold first item, ``item`` → ``li``, tables as they are, ``linkHtml`` →
``a``, ``footnote`` → a ``span`` of class footnote, ``footnoteRef`` → a link
to it, ``renderMultiMedia`` → a bracketed note). Only these attributes pass:
``ID`` (→ ``id``), ``styleCode`` (→ ``class``), ``language`` (→ ``lang``),
table layout attributes, and ``href`` when it is http(s), mailto or a
fragment. Anything else (scripts and styles dropped whole; event
attributes; elements of other namespaces unwrapped, their text kept) is
left out, so the result meets FHIR's narrative rules (txt-1, txt-2): a
``div`` in the XHTML namespace, no scripts, forms, objects or event
handlers, some text.
"""

from __future__ import annotations

import threading
from typing import Any

from lxml import etree

__all__ = ["narrative", "narratives", "XHTML"]

XHTML = "http://www.w3.org/1999/xhtml"

_XSLT = b"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:h="urn:hl7-org:v3" xmlns="http://www.w3.org/1999/xhtml" exclude-result-prefixes="h">
  <xsl:output method="xml" omit-xml-declaration="yes"/>
  <xsl:template match="/">
    <all><xsl:for-each select="//h:section/h:text"><div><xsl:apply-templates select="node()"/></div></xsl:for-each></all>
  </xsl:template>
  <xsl:template match="text()"><xsl:value-of select="."/></xsl:template>
  <xsl:template match="comment()|processing-instruction()"/>
  <xsl:template match="*"><xsl:apply-templates select="node()"/></xsl:template>
  <xsl:template match="*[translate(local-name(), 'SCRIPTYLE', 'scriptyle') = 'script'
                        or translate(local-name(), 'SCRIPTYLE', 'scriptyle') = 'style']"/>
  <xsl:template match="@*"/>
  <xsl:template match="@ID"><xsl:attribute name="id"><xsl:value-of select="."/></xsl:attribute></xsl:template>
  <xsl:template match="@styleCode"><xsl:attribute name="class"><xsl:value-of select="normalize-space(.)"/></xsl:attribute></xsl:template>
  <xsl:template match="@language"><xsl:attribute name="lang"><xsl:value-of select="."/></xsl:attribute></xsl:template>
  <xsl:template match="h:table/@*|h:thead/@*|h:tbody/@*|h:tfoot/@*|h:tr/@*|h:th/@*|h:td/@*|h:col/@*|h:colgroup/@*">
    <xsl:choose>
      <xsl:when test="name() = 'ID' or name() = 'styleCode' or name() = 'language'">
        <xsl:apply-templates select="." mode="common"/>
      </xsl:when>
      <xsl:when test="contains(' border width cellpadding cellspacing summary frame rules colspan rowspan align valign span char charoff abbr axis headers scope ', concat(' ', name(), ' '))">
        <xsl:copy/>
      </xsl:when>
    </xsl:choose>
  </xsl:template>
  <xsl:template match="@ID" mode="common"><xsl:attribute name="id"><xsl:value-of select="."/></xsl:attribute></xsl:template>
  <xsl:template match="@styleCode" mode="common"><xsl:attribute name="class"><xsl:value-of select="normalize-space(.)"/></xsl:attribute></xsl:template>
  <xsl:template match="@language" mode="common"><xsl:attribute name="lang"><xsl:value-of select="."/></xsl:attribute></xsl:template>
  <xsl:template match="h:paragraph"><p><xsl:apply-templates select="@*|node()"/></p></xsl:template>
  <xsl:template match="h:content"><span><xsl:apply-templates select="@*|node()"/></span></xsl:template>
  <xsl:template match="h:list">
    <xsl:variable name="tag"><xsl:choose><xsl:when test="@listType = 'ordered'">ol</xsl:when><xsl:otherwise>ul</xsl:otherwise></xsl:choose></xsl:variable>
    <xsl:element name="{$tag}">
      <xsl:apply-templates select="@*"/>
      <xsl:for-each select="h:caption"><li><b><xsl:apply-templates select="node()"/></b></li></xsl:for-each>
      <xsl:for-each select="*[not(self::h:caption)]">
        <xsl:choose>
          <xsl:when test="self::h:item"><xsl:apply-templates select="."/></xsl:when>
          <xsl:otherwise><li><xsl:apply-templates select="."/></li></xsl:otherwise>
        </xsl:choose>
      </xsl:for-each>
    </xsl:element>
  </xsl:template>
  <xsl:template match="h:item"><li><xsl:apply-templates select="@*|node()"/></li></xsl:template>
  <xsl:template match="h:table|h:thead|h:tbody|h:tfoot|h:tr|h:th|h:td|h:col|h:colgroup|h:sub|h:sup">
    <xsl:element name="{local-name()}"><xsl:apply-templates select="@*|node()"/></xsl:element>
  </xsl:template>
  <xsl:template match="h:caption"><b><xsl:apply-templates select="@*|node()"/></b></xsl:template>
  <xsl:template match="h:table/h:caption"><caption><xsl:apply-templates select="@*|node()"/></caption></xsl:template>
  <xsl:template match="h:br"><br/></xsl:template>
  <xsl:template match="h:linkHtml">
    <a>
      <xsl:apply-templates select="@ID|@styleCode|@language"/>
      <xsl:variable name="href" select="normalize-space(@href)"/>
      <xsl:variable name="low" select="translate($href, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"/>
      <xsl:if test="starts-with($low, 'http://') or starts-with($low, 'https://') or starts-with($low, 'mailto:') or starts-with($low, '#')">
        <xsl:attribute name="href"><xsl:value-of select="$href"/></xsl:attribute>
      </xsl:if>
      <xsl:apply-templates select="node()"/>
    </a>
  </xsl:template>
  <xsl:template match="h:footnote"><span class="footnote"><xsl:apply-templates select="@ID|@language|node()"/></span></xsl:template>
  <xsl:template match="h:footnoteRef"><a href="#{@IDREF}">*</a></xsl:template>
  <xsl:template match="h:renderMultiMedia">
    <span>[multimedia <xsl:value-of select="@referencedObject"/>]<xsl:if test="h:caption"><xsl:text> </xsl:text><xsl:value-of select="normalize-space(h:caption)"/></xsl:if></span>
  </xsl:template>
</xsl:stylesheet>
"""

_LOCAL = threading.local()


def _transform() -> etree.XSLT:
    """The compiled stylesheet, one per thread (XSLT objects are not shared
    between threads), with no access to files or the network."""
    xslt = getattr(_LOCAL, "xslt", None)
    if xslt is None:
        access = etree.XSLTAccessControl.DENY_ALL
        xslt = etree.XSLT(etree.XML(_XSLT), access_control=access)
        _LOCAL.xslt = xslt
    return xslt


_TEXTS = etree.XPath("//h:section/h:text", namespaces={"h": "urn:hl7-org:v3"})


def narratives(
    root: etree._Element, status: str = "additional"
) -> dict[etree._Element, dict[str, Any]]:
    """The FHIR Narrative of every section ``<text>`` of a document, by its
    element, in one transformation (sections whose text holds no text at
    all have none)."""
    texts = _TEXTS(root)
    if not texts:
        return {}
    result = _transform()(root)
    divs = list(result.getroot())
    out: dict[etree._Element, dict[str, Any]] = {}
    for text_el, div in zip(texts, divs):
        if "".join(div.itertext()).strip():
            out[text_el] = {"status": status, "div": etree.tostring(div, encoding="unicode")}
    return out


def narrative(text_el: etree._Element, status: str = "additional") -> dict[str, Any] | None:
    """The FHIR Narrative of one section ``<text>`` (see :func:`narratives`)."""
    holder = etree.Element("{urn:hl7-org:v3}section")
    holder.append(etree.fromstring(etree.tostring(text_el, with_tail=False)))
    return narratives(holder, status).get(holder[0])
