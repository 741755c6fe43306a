Subject: [#{{TICKET}}] Internal note: {{SUBJECT}}

{{NAME}} added an internal note on ticket #{{TICKET}}, "{{SUBJECT}}".
Internal notes are for agents and admins only: the customer never sees
them, and this mail cannot be answered by mail.

{{BODY}}
{{#ATTACHMENT}}
Attached: {{NAME}} ({{SIZE}})
  {{URL}}
{{/ATTACHMENT}}

Open the ticket:

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
