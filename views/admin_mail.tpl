{{%AUTOESCAPE context="HTML"}}
<div class="stack">
<h1>Rejected mail</h1>
<p class="lead">Mail that reached the support address but became no ticket or message, kept whole until you delete it or it is purged.</p>
{{#NO_MAIL}}
<p class="empty">There is no rejected mail</p>
{{/NO_MAIL}}
<div class="table-wrap">
<table class="table-cards" aria-label="Rejected mail">
<thead>
<tr>
<th scope="col">Received</th>
<th scope="col">From</th>
<th scope="col">Subject</th>
<th scope="col">Reason</th>
<th scope="col" class="num">Size</th>
<th scope="col"><span class="visually-hidden">Actions</span></th>
</tr>
</thead>
<tbody>
{{#MAIL}}
<tr>
<td data-label="Received" class="nowrap"><time datetime="{{RECEIVED_ISO}}" title="{{RECEIVED_TEXT}}">{{RECEIVED_AGO}}</time></td>
<td data-label="From">{{FROM}}</td>
<td data-label="Subject">{{SUBJECT}}</td>
<td data-label="Reason" data-reason="{{REASON_CODE}}">{{REASON}}</td>
<td data-label="Size" class="num">{{SIZE}}</td>
<td data-label="Actions"><div class="row-actions">
<a class="btn btn-small" href="/admin/mail/{{ID}}/raw" download>Download<span class="visually-hidden"> mail {{ID}}</span></a>
<form class="inline-form" method="post" action="/admin/mail/{{ID}}/delete" data-confirm="Delete this mail for good?">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">Delete<span class="visually-hidden"> mail {{ID}}</span></button>
</form>
</div></td>
</tr>
{{/MAIL}}
</tbody>
</table>
</div>
{{#MORE}}
<p class="lead">The newest 100 are shown; delete some to see older ones.</p>
{{/MORE}}
</div>
