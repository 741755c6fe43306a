{{%AUTOESCAPE context="HTML"}}
{{#ENTRY}}
{{#IS_MESSAGE}}
<li class="msg msg-{{SIDE}}" id="m{{ITEM_ID}}" data-seq="{{SEQ}}">
<p class="msg-meta"><span class="msg-author">{{AUTHOR}}</span><span class="visually-hidden">,</span> <span class="msg-role">{{AUTHOR_ROLE}}</span><span class="visually-hidden">, wrote</span> <time datetime="{{TIME_ISO}}" title="{{TIME_TEXT}}">{{TIME_AGO}}</time><span class="visually-hidden">:</span></p>
<div class="msg-body">{{BODY:pre_escape}}</div>
{{#ATTACHMENTS}}
<ul class="attachments" aria-label="Attachments">
{{#ATTACHMENT}}
<li class="attachment">{{#PREVIEW}}<a href="{{URL}}" class="attachment-preview" aria-label="Preview of {{NAME}}"><img src="{{URL}}" alt="" loading="lazy" width="160" height="120"></a>{{/PREVIEW}}<a href="{{URL}}" class="attachment-name">{{NAME}}</a> <span class="attachment-size muted">{{SIZE}}</span></li>
{{/ATTACHMENT}}
</ul>
{{/ATTACHMENTS}}
</li>
{{/IS_MESSAGE}}
{{#IS_NOTE}}
<li class="tl-note" id="n{{ITEM_ID}}" data-seq="{{SEQ}}">
<p class="msg-meta"><strong class="note-label">Internal note</strong><span class="visually-hidden">, not shown to the customer, by</span> <span class="msg-author">{{AUTHOR}}</span> <span class="msg-role">{{AUTHOR_ROLE}}</span> <time datetime="{{TIME_ISO}}" title="{{TIME_TEXT}}">{{TIME_AGO}}</time><span class="visually-hidden">:</span></p>
<div class="msg-body">{{BODY:pre_escape}}</div>
{{#ATTACHMENTS}}
<ul class="attachments" aria-label="Attachments of the internal note">
{{#ATTACHMENT}}
<li class="attachment">{{#PREVIEW}}<a href="{{URL}}" class="attachment-preview" aria-label="Preview of {{NAME}}"><img src="{{URL}}" alt="" loading="lazy" width="160" height="120"></a>{{/PREVIEW}}<a href="{{URL}}" class="attachment-name">{{NAME}}</a> <span class="attachment-size muted">{{SIZE}}</span></li>
{{/ATTACHMENT}}
</ul>
{{/ATTACHMENTS}}
</li>
{{/IS_NOTE}}
{{#IS_EVENT}}
<li class="tl-event" id="e{{SEQ}}" data-seq="{{SEQ}}">
<p><span class="event-text">{{TEXT}}</span> <time datetime="{{TIME_ISO}}" title="{{TIME_TEXT}}">{{TIME_AGO}}</time></p>
</li>
{{/IS_EVENT}}
{{/ENTRY}}
