{{%AUTOESCAPE context="HTML"}}
{{#MESSAGE}}
<li class="msg msg-{{SIDE}}" id="m{{MSG_ID}}" data-id="{{MSG_ID}}">
<p class="msg-meta"><span class="msg-author">{{AUTHOR}}</span><span class="visually-hidden">,</span> <span class="msg-role">{{AUTHOR_ROLE}}</span><span class="visually-hidden">, wrote</span> <time datetime="{{TIME_ISO}}" title="{{TIME_TEXT}}">{{TIME_AGO}}</time><span class="visually-hidden">:</span></p>
<div class="msg-body">{{BODY:pre_escape}}</div>
{{#ATTACHMENTS}}
<ul class="attachments" aria-label="Attachments">
{{#ATTACHMENT}}
<li class="attachment">{{#PREVIEW}}<a href="{{URL}}" class="attachment-preview"><img src="{{URL}}" alt="" loading="lazy" width="160" height="120"></a>{{/PREVIEW}}<a href="{{URL}}" class="attachment-name">{{NAME}}</a> <span class="attachment-size muted">{{SIZE}}</span></li>
{{/ATTACHMENT}}
</ul>
{{/ATTACHMENTS}}
</li>
{{/MESSAGE}}
